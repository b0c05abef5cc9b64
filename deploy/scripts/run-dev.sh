#!/usr/bin/env bash
# `make run`: the embedded default. SQLite, L1 + L2 on the Redis at REDIS_URL when it answers
# (otherwise a warning and L1 only), Celery tasks run eagerly when no broker answers.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
export DEBUG="${DEBUG:-true}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/1}"

if ! $PY -m newsite.probe redis "$REDIS_URL"; then
  echo "WARNING: no Redis answers at $REDIS_URL: serving with L1 (in-process) only." >&2
fi
if ! $PY -m newsite.probe broker "$CELERY_BROKER_URL"; then
  echo "WARNING: no Celery broker answers at $CELERY_BROKER_URL: tasks run eagerly in the web process." >&2
  export CELERY_TASK_ALWAYS_EAGER=true
else
  # No worker is started by `make run`: eager keeps the dev server self-contained either way.
  export CELERY_TASK_ALWAYS_EAGER="${CELERY_TASK_ALWAYS_EAGER:-true}"
fi

$PY manage.py migrate --no-input -v 0
# Demo log-ins with known passwords (demo-editor: superuser): this local dev server only.
$PY manage.py seed_demo --articles "${SEED_ARTICLES:-2000}" --if-empty --demo-accounts
# Static files: with DEBUG on (the default here) Django names them plainly and serves them from the
# apps' folders as they are edited (short-lived). With DEBUG off the pages name the content-hashed
# copies (immutable for a year) that only collectstatic writes, as make up, the Dockerfile and the
# systemd unit do (docs/http.md, "Static files and images").
case "${DEBUG,,}" in
  true|on|ok|y|yes|1) ;;
  *) $PY manage.py collectstatic --no-input -v 0 ;;
esac
echo "newsite: serving http://127.0.0.1:8000  (admin: /admin/, login demo-editor / demo-editor)"
exec $PY manage.py runserver 127.0.0.1:8000
