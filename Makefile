# newsite — the two README commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

# `make test` runs against real PostgreSQL and Redis (databases apart from `make up`'s).
TEST_ENV := DATABASE_URL=$${TEST_DATABASE_URL:-postgres://127.0.0.1:5432/newsite} \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
	CELERY_BROKER_URL=$${TEST_CELERY_BROKER_URL:-redis://127.0.0.1:6379/14} \
	CACHE_KEY_PREFIX=$${TEST_CACHE_KEY_PREFIX:-newsite-test} DEBUG=false

.PHONY: run test up down bench lint venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	@touch $(STAMP)

run: venv
	@deploy/scripts/run-dev.sh

test: venv
	@deploy/scripts/ensure-services.sh
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

up: venv
	@deploy/scripts/up.sh

down:
	@deploy/scripts/down.sh

bench: venv
	@$(PY) -m bench $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .run db.sqlite3
