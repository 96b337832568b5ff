#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the tests and `make run`:
#   deploy/postgres-local.sh start|stop|status|url
# The cluster lives in ${CARESIGNAL_PG_HOME:-.cache/postgres}, listens on
# ${CARESIGNAL_PG_PORT:-55432} (127.0.0.1 only, trust auth: nothing else can reach it) and
# has a `caresignal` role owning a `caresignal` database. `start` prints the URL last.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PG_HOME="${CARESIGNAL_PG_HOME:-$ROOT/.cache/postgres}"
PORT="${CARESIGNAL_PG_PORT:-55432}"
DATA="$PG_HOME/data"
URL="postgresql+psycopg://caresignal@127.0.0.1:$PORT/caresignal"

bindir() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return
  fi
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
    echo "PostgreSQL server binaries not found (install the Debian package postgresql)" >&2
    exit 1
  fi
  echo "$found"
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres`
# user that the Debian package creates.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  [ -f "$DATA/PG_VERSION" ] && as_owner "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
  local bin
  bin="$(bindir)"
  if running; then
    echo "$URL"
    return
  fi
  if port_taken; then
    echo "port $PORT is in use by something that is not this cluster ($DATA); set CARESIGNAL_PG_PORT" >&2
    exit 1
  fi
  mkdir -p "$PG_HOME"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PG_HOME"
    # The postgres user must be able to reach its directory through every parent.
    local dir="$PG_HOME"
    while [ "$dir" != "/" ]; do
      dir="$(dirname "$dir")"
      [ -x "$dir" ] && runuser -u postgres -- test -x "$dir" || chmod o+x "$dir"
    done
  fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_HOME/initdb.log" 2>&1 ||
      { cat "$PG_HOME/initdb.log" >&2; exit 1; }
  fi
  as_owner "$bin/pg_ctl" -D "$DATA" -w -t 60 -l "$PG_HOME/server.log" \
    -o "-p $PORT -k $PG_HOME -c listen_addresses=127.0.0.1" start >/dev/null ||
    { tail -20 "$PG_HOME/server.log" >&2; exit 1; }
  local psql=("$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'caresignal'")" != "1" ]; then
    "${psql[@]}" -c "CREATE ROLE caresignal LOGIN CREATEDB"
  fi
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'caresignal'")" != "1" ]; then
    "${psql[@]}" -c "CREATE DATABASE caresignal OWNER caresignal"
  fi
  echo "$URL"
}

stop() {
  if running; then
    as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    echo "postgres stopped"
  else
    echo "postgres was not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "postgres running on 127.0.0.1:$PORT"; else echo "postgres not running"; exit 3; fi ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
