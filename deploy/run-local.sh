#!/usr/bin/env bash
# `make run`: the local pipeline on 127.0.0.1. Starts the broker, provisions topics,
# makes local API keys on first run, runs every service until Ctrl-C and, unless
# CARESIGNAL_DEMO=0, streams a simulated region into it (docs/demo.md).
set -euo pipefail
# Ctrl-C is how this script is stopped, and bash cannot trap a signal that was ignored
# when it started: a shell without job control starts `make run &` that way (a script,
# a CI step), and SIGINT to its process group would then stop no one but the services,
# which turn SIGINT back on themselves (uvicorn, aiosmtpd, faust): their exit looked
# like a crash. Start again with SIGINT at its default (GNU env): the trap below holds.
if [ "$(trap -p INT)" = "trap -- '' SIGINT" ] && [ -z "${CARESIGNAL_RUN_LOCAL_SIGINT_RESET:-}" ] &&
  env --default-signal=INT true 2>/dev/null; then
  CARESIGNAL_RUN_LOCAL_SIGINT_RESET=1 exec env --default-signal=INT bash "$0" "$@"
fi
cd "$(dirname "$0")/.."
# uv as the Makefile finds it: on PATH, else where its installer puts it (~/.local/bin).
UV="$(command -v uv 2>/dev/null || true)"
[ -n "$UV" ] || UV="$HOME/.local/bin/uv"
if [ ! -x "$UV" ]; then
  echo "uv is not on PATH nor in $HOME/.local/bin: run \`make python-deps\` (or \`make run\`) first" >&2
  exit 127
fi
RUN=("$UV" run --frozen)

pids=()
names=()
helper=""   # a background set-up step being waited for
streamer=""
# start NAME LOGFILE COMMAND...: a service in the background, its output appended to
# LOGFILE, in a process group of its own (set -m), out of reach of Ctrl-C: a terminal
# sends SIGINT to its foreground process group, make's and this script's, and the
# services catch SIGINT although a background command starts with it ignored (uvicorn,
# aiosmtpd and faust each install a handler). Sharing the group, they stopped on their
# own, exit 0, while this script was stopping them: a race it could lose.
start() {
  local name=$1 log=$2
  shift 2
  set -m
  "$@" >>"$log" 2>&1 &
  set +m
  pids+=("$!")
  names+=("$name")
}

# Ctrl-C (or SIGTERM, or the terminal closing) reaches this script only: it stops the
# services with SIGTERM (uv passes it on to the service), waits, and kills the process
# groups still there after STOP_GRACE_S. Runs at most once.
STOP_GRACE_S=10
stopping=0
transient=""  # the sleep or curl a wait below is on: a trap can end that wait early
# running_children PID...: those still running as this script's children. It asks the
# kernel, not `jobs -r`: a job whose `wait` a trap cut short can stay "Running" in bash's
# table after it has ended. And a PID recorded long ago (the demo's stream ends when its
# year is streamed) may belong to another process by now.
running_children() {
  local pid stat fields
  for pid in "$@"; do
    read -r stat 2>/dev/null <"/proc/$pid/stat" || continue
    # shellcheck disable=SC2206  # the fields after "(command) ": state, parent, ...
    fields=(${stat##*) })
    if [ "${fields[0]}" != Z ] && [ "${fields[1]}" = "$$" ]; then echo "$pid"; fi
  done
}
# group_members PGID...: the processes still in these process groups (a service's group:
# uv and the Python process it started). uv passes SIGTERM on only once it has set its
# handler, after it has started the service: a SIGTERM in between ends uv and leaves the
# service running in the group, orphaned (seen in a CI run: the alert service still up
# 30 s after Ctrl-C, "every service it started has exited" printed).
group_members() {
  local pgid
  for pgid in "$@"; do pgrep -g "$pgid" 2>/dev/null || true; done
}
stop_services() {
  [ "$stopping" -eq 0 ] || return 0
  stopping=1
  # A second signal must not end this script before the services have stopped: GNU make
  # passes a SIGTERM on to its child (so `timeout make run` sends it twice), and a
  # second Ctrl-C is impatience. What does not stop is killed after STOP_GRACE_S.
  trap '' INT TERM HUP
  # shellcheck disable=SC2206  # helper, streamer and transient are a PID or nothing
  local pid left orphan orphans killed=0 ours=("${pids[@]}" $helper $streamer $transient) deadline=$((SECONDS + STOP_GRACE_S))
  local -A told=()
  for pid in $(running_children "${ours[@]}"); do kill -TERM "$pid" 2>/dev/null || true; done
  while left=$(running_children "${ours[@]}"; group_members "${pids[@]}") && [ -n "$left" ]; do
    for pid in "${pids[@]}"; do
      # uv has gone and left its service: tell the service itself, once.
      if [ -z "$(running_children "$pid")" ] && orphans=$(group_members "$pid") && [ -n "$orphans" ]; then
        for orphan in $orphans; do
          [ -n "${told[$orphan]:-}" ] || kill -TERM "$orphan" 2>/dev/null || true
          told[$orphan]=1
        done
      fi
    done
    if [ "$killed" -eq 0 ] && [ "$SECONDS" -ge "$deadline" ]; then
      killed=1
      for pid in $left; do
        echo "$pid did not stop within ${STOP_GRACE_S}s; killing it" >&2
        # A service's group (uv and the service it started); other steps have none.
        kill -KILL -- "-$pid" 2>/dev/null || pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
      done
    elif [ "$killed" -eq 1 ] && [ "$SECONDS" -ge $((deadline + 5)) ]; then
      echo "still running after SIGKILL: $(echo $left)" >&2
      break
    fi
    sleep 0.2
  done
}
on_signal() {
  echo
  echo "stopping the services ..."
  stop_services
  echo "make run: stopped (every service it started has exited; the broker keeps running: make kafka-stop)"
  exit 0
}
trap on_signal INT TERM HUP
trap stop_services EXIT

INGEST_PORT=${CARESIGNAL_INGEST_PORT:-8000}
SCORING_PORT=${CARESIGNAL_SCORING_WEB_PORT:-6066}
ALERTS_PORT=${CARESIGNAL_ALERTS_PORT:-8002}
SMTP_PORT=${CARESIGNAL_ALERTS_SMTP_PORT:-8025}
KAFKA_PORT=${CARESIGNAL_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${CARESIGNAL_KAFKA_CONTROLLER_PORT:-9093}
DEMO=${CARESIGNAL_DEMO:-1}
# A simulated day every 2.5 s: a year in about 15 minutes, the first alerts within a minute.
DEMO_SPEED=${CARESIGNAL_DEMO_SPEED:-34560}
# The region's last 90 days are history, loaded at once as an authority loads its records
# when it starts: the policy judges each service against its own past, and a scorer that
# had seen nothing could only count.
DEMO_HISTORY_DAYS=${CARESIGNAL_DEMO_HISTORY_DAYS:-90}
# Per topic prefix: a run on other topics is another demo, with its own state.
DEMO_DIR=.cache/demo${CARESIGNAL_TOPIC_PREFIX:+/${CARESIGNAL_TOPIC_PREFIX%-}}
LOGS=.cache/logs
mkdir -p "$LOGS"

fail() {  # fail WHAT TODO...: what went wrong and what to do, then stop
  echo "make run: $1" >&2
  shift
  local line
  for line in "$@"; do echo "  $line" >&2; done
  exit 1
}

# step LABEL COMMAND...: a slow step with a live elapsed-time line; its output is shown
# only if it fails (and kept in $LOGS/setup.log).
step() {
  local label=$1 status=0 started=$SECONDS
  shift
  "$@" >>"$LOGS/setup.log" 2>&1 &
  helper=$!
  while kill -0 "$helper" 2>/dev/null; do
    printf '\r%s ... %d s ' "$label" $((SECONDS - started))
    sleep 1 &
    transient=$!
    wait $! || true
    transient=""
  done
  wait "$helper" || status=$?
  helper=""
  if [ "$status" -ne 0 ]; then
    printf '\r%s ... failed after %d s\n' "$label" $((SECONDS - started))
    return "$status"
  fi
  printf '\r%s ... done (%d s)\n' "$label" $((SECONDS - started))
}

# quick OUT ERR COMMAND...: a quick set-up step, its output to the files OUT and ERR
# ("-": this script's), in the background and waited for. In the foreground, Ctrl-C
# would reach it too and Python print a KeyboardInterrupt traceback; in the background
# it ignores SIGINT, and the trap stops it. The redirections are made here, not on the
# call: the trap runs inside the caller's, and "make run: stopped" would go to OUT.
quick() {
  local out=$1 err=$2 status=0
  shift 2
  if [ "$err" = - ]; then "$@" >"$out" & else "$@" >"$out" 2>"$err" & fi
  helper=$!
  wait "$helper" || status=$?
  helper=""
  return "$status"
}

port_taken() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Which process listens on a port, if `ss` may say (another user's processes it may not).
port_holder() {
  ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n 1 | sed 's/^users:((//; s/))$//' || true
}

check_ports() {  # check_ports "NAME PORT VARIABLE"...: every port free, or say which is not
  local entry name port var holder busy=()
  for entry in "$@"; do
    read -r name port var <<<"$entry"
    if port_taken "$port"; then
      holder=$(port_holder "$port")
      [ -n "$holder" ] || holder="a process that ss cannot name (another user's?)"
      busy+=("port $port ($name) is in use by $holder;" \
        "   stop it (an earlier \`make run\` still running?) or set $var to another port")
    fi
  done
  [ "${#busy[@]}" -eq 0 ] || fail "cannot start: a port it needs is taken" "${busy[@]}"
}

# Ctrl-C from here on ends with "make run: stopped" and status 0, even during set-up.
needed=("ingest $INGEST_PORT CARESIGNAL_INGEST_PORT" "scoring $SCORING_PORT CARESIGNAL_SCORING_WEB_PORT"
  "alerts $ALERTS_PORT CARESIGNAL_ALERTS_PORT")
[ -n "${CARESIGNAL_ALERTS_SMTP_HOST:-}" ] || needed+=("mail-sink $SMTP_PORT CARESIGNAL_ALERTS_SMTP_PORT")
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  # A broker this directory started is ours to reuse; any other holder of its ports is not.
  if ! quick /dev/null /dev/null "${RUN[@]}" caresignal kafka status; then
    needed+=("kafka $KAFKA_PORT CARESIGNAL_KAFKA_PORT"
      "kafka-controller $KAFKA_CONTROLLER_PORT CARESIGNAL_KAFKA_CONTROLLER_PORT")
    command -v java >/dev/null 2>&1 || fail "Java is not installed: the local Kafka broker needs a JDK" \
      "install one: \`make broker-deps\` (apt-get install default-jdk-headless maven), then \`make run\` again;" \
      "or use a cluster you have: KAFKA_BOOTSTRAP_SERVERS=host:9092 make run"
  fi
fi
check_ports "${needed[@]}"

label="starting the Kafka broker"
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] && [ ! -f .cache/kafka/libs/.pom.sha256 ]; then
  label="first start: downloading the Kafka broker's jars from Maven Central (about 100 MB) and starting it"
fi
step "$label" "${RUN[@]}" caresignal kafka start ||
  fail "the Kafka broker did not start; what it said:" "$(tail -n 15 "$LOGS/setup.log")" \
    "(full output: $LOGS/setup.log; the broker's own log: .cache/kafka/server.log)"
step "creating the topics" "${RUN[@]}" caresignal topics create ||
  fail "could not create the topics:" "$(tail -n 15 "$LOGS/setup.log")"
quick /dev/null - "${RUN[@]}" caresignal apikey create --name dev --source urn:caresignal:source:dev \
  --all-types --directory --write-key-to .cache/dev-api-key
quick /dev/null - "${RUN[@]}" caresignal apikey create --for alerts --name ops --operator \
  --write-key-to .cache/dev-alerts-key

DEMO_ARGS=(--seed 1 --scale region)
if [ "$DEMO" != 0 ]; then
  mkdir -p "$DEMO_DIR"
  # The simulated authorities are told by email (the local mail sink) unless the user
  # named a contact file of their own.
  quick "$DEMO_DIR/authorities.txt" - "${RUN[@]}" caresignal simulate "${DEMO_ARGS[@]}" --write-contacts "$DEMO_DIR/contacts.yaml" ||
    fail "could not make the demo's contact file (see above)"
  if [ -z "${CARESIGNAL_ALERTS_CONTACTS_FILE:-}" ]; then
    export CARESIGNAL_ALERTS_CONTACTS_FILE="$DEMO_DIR/contacts.yaml"
  fi
  # The demo's history arrives within seconds, so the authorities are told each service's
  # current level once it has been quiet for 10 s, not the minute a real load is given.
  export CARESIGNAL_ALERTS_BACKFILL_SETTLE_S=${CARESIGNAL_ALERTS_BACKFILL_SETTLE_S:-10}
  read -r DEMO_AUTHORITY DEMO_AUTHORITY_NAME <"$DEMO_DIR/authorities.txt"
  if [ ! -f "$DEMO_DIR/authority-key" ]; then
    # Names are unique in the key file, and a removed $DEMO_DIR leaves its key's entry.
    quick /dev/null - "${RUN[@]}" caresignal apikey create --for alerts --name "demo-${DEMO_AUTHORITY,,}-$(date +%s)" \
      --authority "$DEMO_AUTHORITY" --write-key-to "$DEMO_DIR/authority-key"
  fi
fi

# Logs survive a restart: a service's log from the previous run moves to <name>.log.1;
# the mail log is the only copy of the mails the local sink received, so it only grows.
for name in scorer ingest alerts demo; do
  if [ -f "$LOGS/$name.log" ]; then mv -f "$LOGS/$name.log" "$LOGS/$name.log.1"; fi
done

start scorer "$LOGS/scorer.log" "${RUN[@]}" caresignal scorer
start ingest "$LOGS/ingest.log" "${RUN[@]}" caresignal ingest
# A local mail sink stands in for the SMTP relay unless one is configured: every email
# the alert service sends is appended to .cache/logs/mail.log.
mail_note=""
if [ -z "${CARESIGNAL_ALERTS_SMTP_HOST:-}" ]; then
  echo "===== mail sink started $(date -u +%Y-%m-%dT%H:%M:%SZ) =====" >>"$LOGS/mail.log"
  start mail "$LOGS/mail.log" "${RUN[@]}" python -m aiosmtpd -n -c aiosmtpd.handlers.Debugging \
    -l "127.0.0.1:$SMTP_PORT"
  mail_note="every email the local mail sink received: $LOGS/mail.log"
fi
start alerts "$LOGS/alerts.log" "${RUN[@]}" caresignal alerts
echo "contact points ${CARESIGNAL_ALERTS_CONTACTS_FILE:-deploy/alerts/contacts.yaml}"

# Waits in the loops below are `wait` on a background command: a Ctrl-C then runs the
# trap at once. A foreground command that catches SIGINT itself (curl does) would make
# bash drop the signal, and a loop would see services that Ctrl-C stopped as dead.
pause() {
  sleep "$1" &
  transient=$!
  wait $! || true
  transient=""
}
fetch() {
  local status=0
  curl -fsS --max-time 3 "$@" 2>/dev/null &
  transient=$!
  wait $! || status=$?
  transient=""
  return "$status"
}

service_died() {  # service_died PID STATUS: name it, stop the others, fail
  local i exited=unknown
  for i in "${!pids[@]}"; do
    if [ "${pids[$i]}" = "$1" ]; then exited=${names[$i]}; fi
  done
  echo  # end any progress line
  echo "a service exited ($exited, status $2); stopping the others (see $LOGS/)" >&2
  stop_services
  exit 1
}

check_services() {  # a service that died during a wait ends the run
  local pid status
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      status=0
      wait "$pid" || status=$?
      service_died "$pid" "$status"
    fi
  done
}

# Each service says it is ready at /readyz once it can do its work (Kafka answers, the
# scorer has its partitions, alerts has read the directory and its store).
READY_TIMEOUT_S=${CARESIGNAL_READY_TIMEOUT_S:-240}
started=$SECONDS
waiting=("ingest $INGEST_PORT" "scorer $SCORING_PORT" "alerts $ALERTS_PORT")
while [ "${#waiting[@]}" -gt 0 ]; do
  check_services
  still=()
  for entry in "${waiting[@]}"; do
    read -r name port <<<"$entry"
    fetch -o /dev/null "http://127.0.0.1:$port/readyz" || still+=("$entry")
  done
  waiting=("${still[@]}")
  names_waiting=$(printf '%s\n' "${waiting[@]}" | cut -d' ' -f1 | paste -sd, - | sed 's/,/, /g')
  printf '\rstarting the services: waiting for %s ... %d s ' "${names_waiting:-none}" $((SECONDS - started))
  [ "${#waiting[@]}" -eq 0 ] && break
  if [ $((SECONDS - started)) -ge "$READY_TIMEOUT_S" ]; then
    echo
    fail "not ready after ${READY_TIMEOUT_S}s: $names_waiting (its /readyz did not answer 200)" \
      "see $LOGS/ for what it said"
  fi
  pause 1
done
printf '\rstarting the services ... ready (%d s)%*s\n' $((SECONDS - started)) 30 ""

# The demo streams the simulated year straight into Kafka (ingest would refuse events
# from the future), a simulated day every 2.5 s from today. Once per demo state
# ($DEMO_DIR): a stream that was stopped resumes where the wall clock says it is (what is
# already due is sent at once; what the pipeline saw before counts as duplicates); a
# finished one is not sent again.
stream_demo() {
  local child status=0
  # Ctrl-C reaches the whole process group; this subshell would die of it and leave the
  # stream running. The main script stops it with SIGTERM instead, handled below.
  trap '' INT
  "${RUN[@]}" caresignal simulate "${DEMO_ARGS[@]}" --to kafka --start "$DEMO_START" --speed "$DEMO_SPEED" \
    --history-days "$DEMO_HISTORY_DAYS" \
    --wall-start "$DEMO_WALL_START" --truth "$DEMO_DIR/truth.json" --directory "$DEMO_DIR/directory" \
    --progress >>"$LOGS/demo.log" 2>&1 &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
  wait "$child" || status=$?
  if [ "$status" -eq 0 ]; then
    date -u +%Y-%m-%dT%H:%M:%SZ >"$DEMO_DIR/loaded"
    echo "demo: the simulated year is streamed; the services keep running (Ctrl-C stops them)"
  else
    echo "demo: streaming stopped with status $status: see $LOGS/demo.log (the services keep running)" >&2
  fi
}

if [ "$DEMO" != 0 ]; then
  if [ -f "$DEMO_DIR/loaded" ]; then
    demo_note="demo: the simulated region was streamed in full on $(cat "$DEMO_DIR/loaded"); the board shows it. To see it afresh: \`make clean && make run\`"
  else
    if [ -f "$DEMO_DIR/stream.env" ]; then
      # shellcheck disable=SC1091
      . "$DEMO_DIR/stream.env"
      demo_note="demo: resuming the stream started at $(date -u -d "@${DEMO_WALL_START%.*}" +%Y-%m-%dT%H:%M:%SZ)"
    else
      DEMO_START=$(date -u -d "-$DEMO_HISTORY_DAYS days" +%Y-%m-%d)
      DEMO_WALL_START=$(date +%s)
      printf 'DEMO_START=%s\nDEMO_WALL_START=%s\nDEMO_HISTORY_DAYS=%s\n' "$DEMO_START" "$DEMO_WALL_START" "$DEMO_HISTORY_DAYS" \
        >"$DEMO_DIR/stream.env"
      demo_note="demo: streaming a simulated region (3 authorities, 150 locations): its last $DEMO_HISTORY_DAYS days (from $DEMO_START) as history, then a simulated day every $(awk "BEGIN {print 86400 / $DEMO_SPEED}") s"
    fi
    stream_demo &
    streamer=$!
  fi
fi

echo
if [ "$DEMO" != 0 ]; then
  echo "CareSignal is running on 127.0.0.1, with the demo."
else
  echo "CareSignal is running on 127.0.0.1, empty (CARESIGNAL_DEMO=0): nothing is loaded."
fi
if [ "$DEMO" != 0 ]; then
  echo "  $demo_note (log $LOGS/demo.log)"
fi
echo "  risk board:  http://127.0.0.1:$ALERTS_PORT/board"
echo "    sign in as the operator (sees everything):  $(cat .cache/dev-alerts-key)"
if [ "$DEMO" != 0 ]; then
  echo "    sign in as $DEMO_AUTHORITY_NAME ($DEMO_AUTHORITY; sees only its own locations and alerts):  $(cat "$DEMO_DIR/authority-key")"
fi
echo "  API docs:    ingest http://127.0.0.1:$INGEST_PORT/docs   alerts http://127.0.0.1:$ALERTS_PORT/docs   scoring http://127.0.0.1:$SCORING_PORT/v1/locations"
echo "  metrics:     http://127.0.0.1:$INGEST_PORT/metrics   http://127.0.0.1:$SCORING_PORT/metrics   http://127.0.0.1:$ALERTS_PORT/metrics"
echo "  mail:        ${mail_note:-sent through ${CARESIGNAL_ALERTS_SMTP_HOST:-}:$SMTP_PORT}"
echo "  logs:        $LOGS/   API keys: ingest .cache/dev-api-key, alerts (operator) .cache/dev-alerts-key"
echo "Ctrl-C stops the services (the broker keeps running: make kafka-stop)."

if [ -n "$streamer" ]; then
  # The first alert, with a live line until it comes.
  started=$SECONDS
  key=$(cat .cache/dev-alerts-key)
  while :; do
    check_services
    first=""
    # An alert someone was sent: the history's changes are recorded, sent to nobody.
    for state in open acknowledged resolved; do
      if fetch -o "$DEMO_DIR/first-alert.json" -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$ALERTS_PORT/v1/alerts?limit=1&state=$state"; then
        first=$(cat "$DEMO_DIR/first-alert.json")
      fi
      if [ -n "$first" ] && [ "$first" != "[]" ]; then break; fi
    done
    if [ -n "$first" ] && [ "$first" != "[]" ]; then
      printf '\rdemo: the first alert came after %d s: see the board%*s\n' $((SECONDS - started)) 20 ""
      break
    fi
    if [ $((SECONDS - started)) -ge 180 ]; then
      printf '\rdemo: no alert after %d s: see %s (scorer.log, alerts.log, demo.log)\n' $((SECONDS - started)) "$LOGS/"
      break
    fi
    printf '\rdemo: waiting for the first alert ... %d s ' $((SECONDS - started))
    pause 1
  done
fi

# A service that dies on its own stops the others, so a failure is not hidden. The
# demo's stream is not one of them: it ends when its year is streamed.
status=0
wait -n -p exited "${pids[@]}" || status=$?
service_died "${exited:-}" "$status"
