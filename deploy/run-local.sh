#!/usr/bin/env bash
# `make run`: the local pipeline on 127.0.0.1. Starts the broker, provisions topics,
# makes a local API key on first run, then runs every service until Ctrl-C.
set -euo pipefail
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
start() {  # start NAME LOGFILE COMMAND...: a service in the background, its output appended to LOGFILE
  local name=$1 log=$2
  shift 2
  "$@" >>"$log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

# Background children of a non-interactive shell ignore SIGINT, so Ctrl-C reaches this
# script only: it stops them with SIGTERM (uv passes it on to the service), waits, and
# kills what is still there after STOP_GRACE_S. Runs at most once.
STOP_GRACE_S=10
stopping=0
stop_services() {
  [ "$stopping" -eq 0 ] || return 0
  stopping=1
  trap - INT TERM
  local pid running deadline=$((SECONDS + STOP_GRACE_S))
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  while running=$(jobs -rp) && [ -n "$running" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      for pid in $running; do
        echo "$pid did not stop within ${STOP_GRACE_S}s; killing it" >&2
        pkill -KILL -P "$pid" 2>/dev/null || true  # the service uv started
        kill -KILL "$pid" 2>/dev/null || true
      done
    fi
    sleep 0.2
  done
  wait 2>/dev/null || true
}
on_signal() {
  echo
  echo "stopping the services ..."
  stop_services
  echo "make run: stopped (every service it started has exited; the broker keeps running: make kafka-stop)"
  exit 0
}
trap on_signal INT TERM
trap stop_services EXIT

# Ctrl-C from here on ends with "make run: stopped" and status 0, even during set-up.
"${RUN[@]}" caresignal kafka start
"${RUN[@]}" caresignal topics create
"${RUN[@]}" caresignal apikey create --name dev --source urn:caresignal:source:dev \
  --all-types --directory --write-key-to .cache/dev-api-key
"${RUN[@]}" caresignal apikey create --for alerts --name ops --operator --write-key-to .cache/dev-alerts-key

# Logs survive a restart: a service's log from the previous run moves to <name>.log.1;
# the mail log is the only copy of the mails the local sink received, so it only grows.
LOGS=.cache/logs
mkdir -p "$LOGS"
for name in scorer ingest alerts; do
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
    -l "127.0.0.1:${CARESIGNAL_ALERTS_SMTP_PORT:-8025}"
  mail_note=", emails $LOGS/mail.log"
fi
start alerts "$LOGS/alerts.log" "${RUN[@]}" caresignal alerts
echo "ingest:  http://127.0.0.1:${CARESIGNAL_INGEST_PORT:-8000}/docs   (log $LOGS/ingest.log)"
echo "scoring: http://127.0.0.1:${CARESIGNAL_SCORING_WEB_PORT:-6066}/v1/locations   (log $LOGS/scorer.log)"
echo "alerts:  http://127.0.0.1:${CARESIGNAL_ALERTS_PORT:-8002}/docs   (log $LOGS/alerts.log$mail_note)"
echo "API keys: ingest .cache/dev-api-key, alerts (operator) .cache/dev-alerts-key;" \
  "contact points ${CARESIGNAL_ALERTS_CONTACTS_FILE:-deploy/alerts/contacts.yaml}"
echo "Ctrl-C stops the services (the broker keeps running: make kafka-stop)."

# A service that dies on its own stops the others, so a failure is not hidden.
status=0
wait -n -p exited "${pids[@]}" || status=$?
for i in "${!pids[@]}"; do
  if [ "${pids[$i]}" = "${exited:-}" ]; then exited=${names[$i]}; fi
done
echo "a service exited (${exited:-unknown}, status $status); stopping the others (see $LOGS/)" >&2
stop_services
exit 1
