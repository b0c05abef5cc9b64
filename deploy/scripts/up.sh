#!/usr/bin/env bash
# `make up`: a production-like stack on this machine, in the background. PostgreSQL database
# `newsite` (DATABASE_URL, default postgres:///newsite) created and migrated, demo data the first
# time, the web server (granian, deploy/scripts/run-web.sh) on 127.0.0.1:8000, Celery worker +
# beat, Varnish on 127.0.0.1:8080 in front.
# Returns when everything answers. `make down` stops it all.
#
# Ports, for a second stack beside another (the clean-clone test runs one):
#   NEWSITE_HTTP_PORT (the web server, 8000), NEWSITE_EDGE_PORT (Varnish, 8080),
#   NEWSITE_VARNISH_ADMIN_PORT (varnishadm -T, 6082).
# WEB_SERVER=gunicorn runs gunicorn instead (deploy/gunicorn.conf.py); WEB_WORKERS, WEB_THREADS;
# WEB_INTERFACE=asgi runs granian on newsite.asgi:application (default wsgi; run-web.sh).
# The web server, the Celery worker and beat share PROMETHEUS_MULTIPROC_DIR (.run/prometheus), so the
# app's /metrics also shows what the worker counts (CDN purges).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN="$PWD/.run"
mkdir -p "$RUN"
PY=.venv/bin/python
HTTP_PORT="${NEWSITE_HTTP_PORT:-8000}"
EDGE_PORT="${NEWSITE_EDGE_PORT:-8080}"
ADMIN_PORT="${NEWSITE_VARNISH_ADMIN_PORT:-6082}"
export DATABASE_URL="${DATABASE_URL:-postgres:///newsite}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/1}"
export VARNISH_PURGE_URL="${VARNISH_PURGE_URL:-http://127.0.0.1:$EDGE_PORT/}"
export DEBUG="${DEBUG:-false}"
export WEB_BIND="127.0.0.1:$HTTP_PORT" GUNICORN_BIND="127.0.0.1:$HTTP_PORT"
# Never the development key: SECRET_KEY from the environment, else a random one kept in .run/.
if [ -z "${SECRET_KEY:-}" ]; then
  if [ ! -s "$RUN/secret_key" ]; then
    (umask 077; python3 -c "import secrets; print(secrets.token_urlsafe(64))" >"$RUN/secret_key")
  fi
  SECRET_KEY="$(cat "$RUN/secret_key")"
fi
export SECRET_KEY
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$RUN/prometheus}"
# The freshness canary (Celery beat) reads the app's port (WEB_BIND) and this edge.
export NEWSITE_EDGE_URL="${NEWSITE_EDGE_URL:-http://127.0.0.1:$EDGE_PORT}"

deploy/scripts/ensure-services.sh

running() {  # pidfile
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# A new stack starts with empty metrics (files of dead pids would be summed into its counters);
# while any process of a running stack still writes there, the directory is left alone.
if ! running "$RUN/web.pid" && ! running "$RUN/celery-worker.pid" && ! running "$RUN/celery-beat.pid"; then
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -maxdepth 1 -name '*.db' -delete
fi
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

dbname=$($PY -c "import environ,sys; print(environ.Env.db_url_config(sys.argv[1])['NAME'])" "$DATABASE_URL")
if ! psql -h 127.0.0.1 -d postgres -Atc "select 1 from pg_database where datname='$dbname'" | grep -q 1; then
  echo "up: creating database $dbname"
  psql -h 127.0.0.1 -d postgres -qc "create database \"$dbname\""
fi
$PY manage.py migrate --no-input -v 0
# Demo content only: no account with a known password (those are `make run`'s, --demo-accounts).
$PY manage.py seed_demo --articles "${SEED_ARTICLES:-2000}" --if-empty
$PY manage.py collectstatic --no-input -v 0
# The VCL's public routes must be the app's (caching/edge_vcl.py): refuse a stale default.vcl.
$PY manage.py edge_vcl --check

wait_for() {  # url, name
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$1"; then return 0; fi
    sleep 0.5
  done
  echo "up: $2 did not answer at $1" >&2
  return 1
}

if running "$RUN/web.pid"; then
  echo "up: web server already running"
else
  # In a session of its own (make down stops whatever is left in it), its log in .run/web.log;
  # the pid file is the server's main process (granian: --pid-file; gunicorn: --pid).
  rm -f "$RUN/web.pid"
  WEB_PIDFILE="$RUN/web.pid" setsid nohup deploy/scripts/run-web.sh >>"$RUN/web.log" 2>&1 </dev/null &
  for _ in $(seq 1 40); do [ -s "$RUN/web.pid" ] && break; sleep 0.25; done
fi
wait_for "http://127.0.0.1:$HTTP_PORT/api/categories/" "web server (.run/web.log)"

if running "$RUN/celery-worker.pid"; then
  echo "up: celery worker already running"
else
  .venv/bin/celery -A newsite worker --detach --loglevel INFO --concurrency 2 \
    --hostname "worker-$HTTP_PORT@%h" --pidfile "$RUN/celery-worker.pid" --logfile "$RUN/celery-worker.log"
fi
if running "$RUN/celery-beat.pid"; then
  echo "up: celery beat already running"
else
  .venv/bin/celery -A newsite beat --detach --loglevel INFO --pidfile "$RUN/celery-beat.pid" \
    --logfile "$RUN/celery-beat.log" --schedule "$RUN/celerybeat-schedule"
fi

# varnishd started as root hands its VCL and its -n directory to an unprivileged user (its jail):
# a checkout under a private home (0700, /root) is out of that user's reach. As root, the work
# directory is therefore a temp dir of its own that .run/varnish points to (make down removes it).
if [ ! -e "$RUN/varnish" ] && [ "$(id -u)" = 0 ]; then
  varnish_dir=$(mktemp -d /tmp/newsite-varnish-XXXXXXXX)
  chmod 755 "$varnish_dir"
  ln -s "$varnish_dir" "$RUN/varnish"
fi
if running "$RUN/varnish/varnishd.pid"; then
  echo "up: varnish already running"
else
  VARNISH_WORKDIR="$RUN/varnish" VARNISH_LISTEN="127.0.0.1:$EDGE_PORT" VARNISH_ADMIN="127.0.0.1:$ADMIN_PORT" \
    BACKEND_HOST=127.0.0.1 BACKEND_PORT="$HTTP_PORT" deploy/varnish/run-varnishd.sh
fi
wait_for "http://127.0.0.1:$EDGE_PORT/api/categories/" varnish

if $PY manage.py help warm_cache >/dev/null 2>&1; then
  # --all: every article's detail too (the long tail); on a Redis that kept its contents it only
  # reads (docs/caching.md, "Bulk fetch and warming").
  # --edge: then every warmed page through Varnish, so the long tail's first readers hit the edge.
  $PY manage.py warm_cache --all --edge "http://127.0.0.1:$EDGE_PORT" \
    || echo "up: warm_cache failed (the site still serves, cold)" >&2
fi
echo "newsite is up: app http://127.0.0.1:$HTTP_PORT  edge http://127.0.0.1:$EDGE_PORT  (make down to stop)"
echo "  editor account: .venv/bin/python manage.py createsuperuser (with DATABASE_URL=$DATABASE_URL)"
