#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the tests and `make run`:
#   deploy/postgres-local.sh start|stop|status|url
# The cluster lives in ${CARESIGNAL_PG_HOME:-.cache/postgres} (data/, server.log, the unix
# socket), listens on 127.0.0.1:${CARESIGNAL_PG_PORT:-55432} only and has a `caresignal`
# role (LOGIN CREATEDB, trusted over 127.0.0.1) owning a `caresignal` database.
# `start` prints the URL as its last line of stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_HOME="$(realpath -m -- "${CARESIGNAL_PG_HOME:-$ROOT/.cache/postgres}")"
PORT="${CARESIGNAL_PG_PORT:-55432}"
DATA="$PG_HOME/data"
URL="postgresql+psycopg://caresignal@127.0.0.1:$PORT/caresignal"

die() { echo "postgres-local: $*" >&2; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ ]] || die "CARESIGNAL_PG_PORT must be a number, not '$PORT'"
# The path goes into `pg_ctl -o` (a shell command line) in single quotes.
[[ "$PG_HOME" != *[\'$'\n']* ]] || die "CARESIGNAL_PG_HOME may not contain a quote or a newline"

# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system
# user that the Debian package creates, otherwise to whoever runs this script. The owner
# is also the cluster's superuser, reachable only over the unix socket with peer auth.
if [ "$(id -u)" -eq 0 ]; then
  OWNER=postgres
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (install the Debian package postgresql)"
else
  OWNER="$(id -un)"
fi

# Runs a command as the owner, from / (PostgreSQL 15's tools fail, "could not identify
# current directory", when started in a directory the owner cannot reach, e.g. under
# /root) and without fd 9, the start/stop lock, which the server would otherwise keep.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@") 9>&-
  else
    (cd / && "$@") 9>&-
  fi
}

has_server() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

# The newest installed server (a newer client-only version dir is skipped); an existing
# cluster needs the major version that made it.
bindir() {
  local dir want=""
  [ -f "$DATA/PG_VERSION" ] && want="$(cat "$DATA/PG_VERSION")"
  if [ -n "$want" ] && has_server "/usr/lib/postgresql/$want/bin"; then
    echo "/usr/lib/postgresql/$want/bin"
    return
  fi
  while read -r dir; do
    if has_server "$dir" && { [ -z "$want" ] || [ "$("$dir/postgres" -V | grep -oE '[0-9]+' | head -1)" = "$want" ]; }; then
      echo "$dir"
      return
    fi
  done < <({ ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV; command -v pg_config >/dev/null && pg_config --bindir; } || true)
  [ -z "$want" ] || die "the cluster in $DATA is PostgreSQL $want, whose server is not installed (delete $PG_HOME to start afresh)"
  die "PostgreSQL server binaries not found (bash deploy/install-system-deps.sh postgresql)"
}

running() {
  [ -f "$DATA/PG_VERSION" ] && as_owner "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# Line 4 of postmaster.pid is the port the running server listens on.
running_port() { sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true; }

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# The owner must reach the home through every parent directory. A repository checked out
# under /root (0700) or a private .cache would stop it, and moving the cluster elsewhere
# (e.g. /var/tmp) would leave it behind when .cache is deleted. So each parent the owner
# cannot search gets search permission only (x, never r: nothing can be listed): for the
# postgres user alone through an ACL where setfacl works, otherwise o+x. Said on stderr.
reachable_by_owner() {
  [ "$(id -u)" -eq 0 ] || return 0
  local dir="" part parts
  # From / down, so that only the directories that really block the way are changed.
  IFS=/ read -ra parts <<<"${PG_HOME#/}"
  for part in "${parts[@]:0:${#parts[@]}-1}"; do
    dir="$dir/$part"
    as_owner test -x "$dir" && continue
    if command -v setfacl >/dev/null && setfacl -m u:postgres:x "$dir" 2>/dev/null && as_owner test -x "$dir"; then
      echo "postgres-local: gave the postgres user search access to $dir (ACL u:postgres:x)" >&2
    else
      chmod o+x "$dir"
      echo "postgres-local: made $dir searchable by others (o+x) so the postgres user can reach $PG_HOME" >&2
    fi
  done
}

# Written at every start, so a cluster made by an older version of this script is brought
# into line: the superuser over the socket as its OS user only, every other role trusted
# over 127.0.0.1 (the superuser is refused there: trust would hand any local account the
# server's OS user through COPY ... PROGRAM), nothing else.
write_hba() {
  as_owner tee "$DATA/pg_hba.conf" >/dev/null <<EOF
# Written by deploy/postgres-local.sh at every start.
local all  all                 peer
host  all  $OWNER  127.0.0.1/32  reject
host  all  all     127.0.0.1/32  trust
EOF
}

ensure_database() {
  local psql=("$1/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_HOME" -p "$PORT" -U "$OWNER" -d postgres)
  as_owner "${psql[@]}" >/dev/null <<'SQL'
SELECT 'CREATE ROLE caresignal LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'caresignal')
\gexec
SELECT 'CREATE DATABASE caresignal OWNER caresignal' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'caresignal')
\gexec
SQL
}

start() {
  local bin current
  # A unix socket path is limited to 107 bytes; the server would not start.
  [ ${#PG_HOME} -le 90 ] || die "$PG_HOME is too long a path for the server's unix socket; set CARESIGNAL_PG_HOME to a shorter one"
  mkdir -p "$PG_HOME"
  # One start or stop at a time: two test sessions starting at once would both run initdb.
  exec 9>"$PG_HOME/lock"
  flock 9
  bin="$(bindir)"
  if running; then
    current="$(running_port)"
    [ "$current" = "$PORT" ] ||
      die "the cluster in $PG_HOME is running on port $current, not $PORT (deploy/postgres-local.sh stop, or set CARESIGNAL_PG_PORT=$current)"
  else
    if port_taken; then
      die "127.0.0.1:$PORT is in use by something that is not the cluster in $PG_HOME (set CARESIGNAL_PG_PORT to a free port)"
    fi
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$PG_HOME"
      reachable_by_owner
    fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$DATA" -U "$OWNER" --auth-local=peer --auth-host=reject -E UTF8 --no-locale >"$PG_HOME/initdb.log" 2>&1 ||
        { cat "$PG_HOME/initdb.log" >&2; die "initdb failed (log: $PG_HOME/initdb.log)"; }
    fi
    write_hba
    as_owner "$bin/pg_ctl" -D "$DATA" -w -t 60 -l "$PG_HOME/server.log" \
      -o "-p $PORT -k '$PG_HOME' -c listen_addresses=127.0.0.1" start >/dev/null ||
      { tail -20 "$PG_HOME/server.log" >&2; die "the server did not start (log: $PG_HOME/server.log)"; }
  fi
  ensure_database "$bin"
  echo "$URL"
}

stop() {
  if ! running; then
    echo "postgres was not running"
    return
  fi
  exec 9>"$PG_HOME/lock"
  flock 9
  as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
  echo "postgres stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "postgres running on 127.0.0.1:$(running_port) ($DATA)"; else echo "postgres not running"; exit 3; fi ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
