#!/usr/bin/env bash
# `make up`: a production-like stack on this machine, in the background. PostgreSQL database
# `newsite` (DATABASE_URL, default postgres:///newsite) created and migrated, demo data the first
# time, gunicorn on 127.0.0.1:8000, Celery worker + beat, Varnish on 127.0.0.1:8080 in front.
# Returns when everything answers. `make down` stops it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=.run
mkdir -p "$RUN"
PY=.venv/bin/python
export DATABASE_URL="${DATABASE_URL:-postgres:///newsite}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/1}"
export VARNISH_PURGE_URL="${VARNISH_PURGE_URL:-http://127.0.0.1:8080/}"
export DEBUG="${DEBUG:-false}"

deploy/scripts/ensure-services.sh

dbname=$($PY -c "import environ,sys; print(environ.Env.db_url_config(sys.argv[1])['NAME'])" "$DATABASE_URL")
if ! psql -h 127.0.0.1 -d postgres -Atc "select 1 from pg_database where datname='$dbname'" | grep -q 1; then
  echo "up: creating database $dbname"
  psql -h 127.0.0.1 -d postgres -qc "create database \"$dbname\""
fi
$PY manage.py migrate --no-input -v 0
$PY manage.py seed_demo --articles "${SEED_ARTICLES:-2000}" --if-empty
$PY manage.py collectstatic --no-input -v 0

wait_for() {  # url, name
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$1"; then return 0; fi
    sleep 0.5
  done
  echo "up: $2 did not answer at $1" >&2
  return 1
}

if [ -f "$RUN/gunicorn.pid" ] && kill -0 "$(cat "$RUN/gunicorn.pid")" 2>/dev/null; then
  echo "up: gunicorn already running"
else
  .venv/bin/gunicorn -c deploy/gunicorn.conf.py newsite.wsgi --daemon --pid "$RUN/gunicorn.pid" \
    --error-logfile "$RUN/gunicorn.log"
fi
wait_for http://127.0.0.1:8000/api/categories/ gunicorn

if [ -f "$RUN/celery-worker.pid" ] && kill -0 "$(cat "$RUN/celery-worker.pid")" 2>/dev/null; then
  echo "up: celery worker already running"
else
  .venv/bin/celery -A newsite worker --detach --loglevel INFO --concurrency 2 \
    --pidfile "$RUN/celery-worker.pid" --logfile "$RUN/celery-worker.log"
fi
if [ -f "$RUN/celery-beat.pid" ] && kill -0 "$(cat "$RUN/celery-beat.pid")" 2>/dev/null; then
  echo "up: celery beat already running"
else
  .venv/bin/celery -A newsite beat --detach --loglevel INFO --pidfile "$RUN/celery-beat.pid" \
    --logfile "$RUN/celery-beat.log" --schedule "$RUN/celerybeat-schedule"
fi

if [ -f "$RUN/varnish/varnishd.pid" ] && kill -0 "$(cat "$RUN/varnish/varnishd.pid")" 2>/dev/null; then
  echo "up: varnish already running"
else
  VARNISH_WORKDIR="$RUN/varnish" deploy/varnish/run-varnishd.sh
fi
wait_for http://127.0.0.1:8080/api/categories/ varnish

if $PY manage.py help warm_cache >/dev/null 2>&1; then
  $PY manage.py warm_cache || echo "up: warm_cache failed (the site still serves, cold)" >&2
fi
echo "newsite is up: app http://127.0.0.1:8000  edge http://127.0.0.1:8080  (make down to stop)"
