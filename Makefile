# The two commands that matter: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen

.PHONY: setup system-deps python-deps run test lint typecheck unit bench bench-ingest bench-scoring bench-alerts kafka-start kafka-stop postgres-start postgres-stop schemas clean

setup: system-deps python-deps

system-deps:
	@bash deploy/install-system-deps.sh postgresql

python-deps:
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

# Starts the broker, provisions topics, makes a local API key on first run
# (.cache/dev-api-key), then runs ingest and the scorer until Ctrl-C.
run: setup
	@bash deploy/run-local.sh

test: setup lint typecheck
	$(RUN) pytest -ra

lint:
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

typecheck:
	@$(RUN) mypy

unit: python-deps
	$(RUN) pytest -ra -m "not integration"

bench: bench-ingest bench-scoring bench-alerts

bench-ingest: setup
	@bash deploy/install-system-deps.sh wrk
	@$(RUN) caresignal kafka start
	$(RUN) python bench/ingest.py

bench-scoring: setup
	@$(RUN) caresignal kafka start
	$(RUN) python bench/scoring.py

bench-alerts: setup
	@$(RUN) caresignal kafka start
	$(RUN) python bench/alerts.py

kafka-start: setup
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
