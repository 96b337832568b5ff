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
"${RUN[@]}" caresignal apikey create --for alerts --name ops --operator --write-key-to .cache/dev-alerts-key
mkdir -p .cache/logs
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM
"${RUN[@]}" caresignal scorer > .cache/logs/scorer.log 2>&1 &
pids+=($!)
"${RUN[@]}" caresignal ingest > .cache/logs/ingest.log 2>&1 &
pids+=($!)
# A local mail sink stands in for the SMTP relay unless one is configured: every email
# the alert service sends is printed to .cache/logs/mail.log.
if [ -z "${CARESIGNAL_ALERTS_SMTP_HOST:-}" ]; then
  "${RUN[@]}" python -m aiosmtpd -n -c aiosmtpd.handlers.Debugging -l "127.0.0.1:${CARESIGNAL_ALERTS_SMTP_PORT:-8025}" \
    > .cache/logs/mail.log 2>&1 &
  pids+=($!)
fi
"${RUN[@]}" caresignal alerts > .cache/logs/alerts.log 2>&1 &
pids+=($!)
echo "ingest:  http://127.0.0.1:${CARESIGNAL_INGEST_PORT:-8000}/docs   (log .cache/logs/ingest.log)"
echo "scoring: http://127.0.0.1:${CARESIGNAL_SCORING_WEB_PORT:-6066}/v1/locations   (log .cache/logs/scorer.log)"
echo "alerts:  http://127.0.0.1:${CARESIGNAL_ALERTS_PORT:-8002}/docs   (log .cache/logs/alerts.log, emails .cache/logs/mail.log)"
echo "API keys: ingest .cache/dev-api-key, alerts (operator) .cache/dev-alerts-key; contact points deploy/alerts/contacts.yaml"
echo "Ctrl-C stops the services (the broker keeps running: make kafka-stop)."
# Stop everything as soon as any service dies, so a failure is not hidden.
wait -n "${pids[@]}"
echo "a service exited; stopping the others (see .cache/logs/)" >&2
exit 1
