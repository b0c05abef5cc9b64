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
	CACHE_KEY_PREFIX=$${TEST_CACHE_KEY_PREFIX:-newsite-test} DEBUG=false \
	THROTTLE_EXEMPT=$${TEST_THROTTLE_EXEMPT:-127.0.0.0/8,::1}

.PHONY: run test up down bench lint venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	@touch $(STAMP)

run: venv
	@deploy/scripts/run-dev.sh

# Everything a test would otherwise skip for is installed first (services, Debian binaries, the
# Django cache-suite sdist): under CI=true an unexpected skip fails the run (tests/conftest.py).
test: venv
	@deploy/scripts/ensure-services.sh
	@$(PY) tests/cache_backend/fetch_django_cache_tests.py >/dev/null \
		|| echo "make test: Django's cache test suite could not be fetched; its tests will skip" >&2
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# Ports and names are overridable, for a second stack beside the first (deploy/scripts/up.sh):
#   NEWSITE_HTTP_PORT=8100 NEWSITE_EDGE_PORT=8180 NEWSITE_VARNISH_ADMIN_PORT=6182 \
#   DATABASE_URL=postgres:///newsite2 REDIS_URL=redis://127.0.0.1:6379/2 make up
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
