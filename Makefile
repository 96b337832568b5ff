# The two commands that matter: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen

.PHONY: setup run-setup broker-deps system-deps python-deps node-deps run test soak lint typecheck unit bench bench-ingest bench-scoring bench-replay bench-alerts bench-pipeline bench-national kafka-start kafka-stop postgres-start postgres-stop schemas clean

# Everything `make test` needs. `make run` needs less (run-setup): no PostgreSQL, kcat
# or docker-compose, which only the tests use.
setup: system-deps python-deps node-deps

run-setup: broker-deps python-deps node-deps

# A JDK and Maven: the local Kafka broker.
broker-deps:
	@bash deploy/install-system-deps.sh

system-deps:
	@bash deploy/install-system-deps.sh kcat postgresql docker-compose chromium prometheus openssl

# The risk board's front end (GOV.UK Frontend) and, for its browser tests, axe-core: from
# the npm registry at the versions package-lock.json pins, into node_modules (not committed).
node-deps:
	@bash deploy/install-system-deps.sh npm
	@npm ci --no-audit --no-fund --loglevel=error

# Debian's own python3 refuses a --user install (PEP 668) unless told that uv, a
# self-contained binary in ~/.local/bin, cannot break the system's packages.
python-deps:
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	@$(UV) sync --frozen --quiet

# The demo (docs/demo.md): checks Java and the ports, starts the broker, provisions
# topics, makes local API keys on first run (.cache/dev-api-key, .cache/dev-alerts-key),
# runs the scorer, ingest, a mail sink and alerts until Ctrl-C, and streams a simulated
# region into them (CARESIGNAL_DEMO=0 make run: the pipeline empty). On Ctrl-C the script stops every service, prints
# "make run: stopped" and exits 0; GNU make itself still ends by re-raising SIGINT
# (status 130 in a shell) once its child has exited, printing nothing when the child
# exited 0 ("Error N" or "Interrupt" only for a child that failed or died of it). A make
# started with SIGINT ignored (`make run &` in a script) ignores it and exits 0.
run: run-setup
	@bash deploy/run-local.sh

test: setup lint typecheck
	$(RUN) pytest -ra --durations=15

# The fault tests' long forms (20 kill cycles each, minutes-long outages; `make test`
# runs the short forms) and their summary table: docs/reliability.md.
soak: setup
	$(RUN) python -m tests.soak

lint:
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

typecheck:
	@$(RUN) mypy

unit: python-deps
	$(RUN) pytest -ra -m "not integration"

bench: bench-ingest bench-scoring bench-replay bench-alerts

bench-ingest: run-setup
	@bash deploy/install-system-deps.sh wrk
	@$(RUN) caresignal kafka start
	$(RUN) python bench/ingest.py

bench-scoring: run-setup
	@$(RUN) caresignal kafka start
	$(RUN) python bench/scoring.py

# `caresignal scorer --replay` (the rebuild) next to the pure engine (BENCH_ARGS="--help").
bench-replay: run-setup
	@$(RUN) caresignal kafka start
	$(RUN) python bench/replay.py $(BENCH_ARGS)

bench-alerts: run-setup
	@$(RUN) caresignal kafka start
	$(RUN) python bench/alerts.py

# About 30 minutes: a ramp to the maximum sustainable rate, then 10 minutes at 50 % and at
# 80 % of it (BENCH_ARGS="--minutes 2" for a short run). Not part of `bench`.
bench-pipeline: run-setup
	@$(RUN) caresignal kafka start
	$(RUN) python bench/pipeline.py $(BENCH_ARGS)

# A national period (30 days) through two real scorer workers: how long a national
# backfill takes (BENCH_ARGS="--days 7" for a short run). Not part of `bench`.
bench-national: run-setup
	@$(RUN) caresignal kafka start
	$(RUN) python bench/national.py $(BENCH_ARGS)

kafka-start: run-setup
	@$(RUN) caresignal kafka start

kafka-stop:
	@$(RUN) caresignal kafka stop

postgres-start:
	@bash deploy/install-system-deps.sh postgresql
	@bash deploy/postgres-local.sh start

postgres-stop:
	@bash deploy/postgres-local.sh stop

schemas: python-deps
	$(RUN) caresignal schemas export

clean:
	-@$(RUN) caresignal kafka stop
	-@bash deploy/postgres-local.sh stop
	rm -rf .cache .venv
