#!/usr/bin/env bash
# `make run`: the local pipeline on 127.0.0.1. Starts the broker, provisions topics,
# makes a local API key on first run, then runs every service until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=(uv run --frozen)
"${RUN[@]}" caresignal kafka start
"${RUN[@]}" caresignal topics create
"${RUN[@]}" caresignal apikey create --name dev --source urn:caresignal:source:dev \
  --all-types --directory --write-key-to .cache/dev-api-key
mkdir -p .cache/logs
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM
"${RUN[@]}" caresignal scorer > .cache/logs/scorer.log 2>&1 &
pids+=($!)
"${RUN[@]}" caresignal ingest > .cache/logs/ingest.log 2>&1 &
pids+=($!)
echo "ingest:  http://127.0.0.1:${CARESIGNAL_INGEST_PORT:-8000}/docs   (log .cache/logs/ingest.log)"
echo "scoring: http://127.0.0.1:${CARESIGNAL_SCORING_WEB_PORT:-6066}/v1/locations   (log .cache/logs/scorer.log)"
echo "API key: .cache/dev-api-key. Ctrl-C stops the services (the broker keeps running: make kafka-stop)."
# Stop everything as soon as any service dies, so a failure is not hidden.
wait -n "${pids[@]}"
echo "a service exited; stopping the others (see .cache/logs/)" >&2
exit 1
