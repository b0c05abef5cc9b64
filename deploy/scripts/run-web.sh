#!/usr/bin/env bash
# newsite's web server, in the foreground: granian (the default, chosen by measurement: issue 17.5,
# bench/results/2026-12-02-servers.md, docs/bench.md "App servers") or gunicorn
# (WEB_SERVER=gunicorn: deploy/gunicorn.conf.py). make up, the systemd unit, docker-compose and
# the Dockerfile all start it, so every one runs the same server with the same settings.
#
#   WEB_SERVER    granian (default) | gunicorn
#   WEB_INTERFACE wsgi (default) | asgi: granian's interface - newsite.wsgi:application or
#                 newsite.asgi:application (the same front under ASGI, Django's ASGIHandler behind
#                 it; docs/bench.md "ASGI vs WSGI" for why wsgi is the default). gunicorn: wsgi only
#   WEB_BIND      host:port (default 127.0.0.1:8000; GUNICORN_BIND is read too)
#   WEB_WORKERS   worker processes (default: the CPU count; GUNICORN_WORKERS is read too)
#   WEB_THREADS   threads per worker running the app (default 4; GUNICORN_THREADS is read too;
#                 asgi: unused - the event loop answers, Django's sync code runs in asgiref's threads)
#   WEB_PIDFILE   where granian writes its pid (make up: .run/web.pid)
#   WEB_LOG_LEVEL granian's log level (default warning)
#
# granian: SIGTERM/SIGINT stop gracefully (each worker finishes its requests, 20 s at most);
# SIGHUP replaces the workers one by one (a new one starts, then the old one stops gracefully:
# no request is refused), which is how a new release is picked up; a worker that dies is
# respawned. Prometheus multiprocess: every worker writes to PROMETHEUS_MULTIPROC_DIR (created
# here, before any worker imports the app) and a new worker drops the live gauges of dead ones
# (newsite/ops/metrics.py reap_dead_processes; gunicorn's child_exit does it for gunicorn).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIND="${WEB_BIND:-${GUNICORN_BIND:-127.0.0.1:8000}}"
WORKERS="${WEB_WORKERS:-${GUNICORN_WORKERS:-$(nproc)}}"
THREADS="${WEB_THREADS:-${GUNICORN_THREADS:-4}}"
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/.run/prometheus}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
BIN=.venv/bin
[ -x "$BIN/granian" ] || BIN="$(dirname "$(command -v granian || command -v gunicorn)")"

INTERFACE="${WEB_INTERFACE:-wsgi}"
case "$INTERFACE" in
  wsgi|asgi) ;;
  *) echo "run-web: WEB_INTERFACE must be wsgi or asgi, not ${INTERFACE}" >&2; exit 2 ;;
esac

case "${WEB_SERVER:-granian}" in
  granian)
    args=(--interface "$INTERFACE" --host "${BIND%:*}" --port "${BIND##*:}" --workers "$WORKERS"
          --respawn-failed-workers --workers-kill-timeout 20 --no-ws --log-level "${WEB_LOG_LEVEL:-warning}")
    # granian runs an ASGI app on one event loop thread per worker (--blocking-threads is WSGI's).
    if [ "$INTERFACE" = wsgi ]; then args+=(--blocking-threads "$THREADS"); fi
    if [ -n "${WEB_PIDFILE:-}" ]; then args+=(--pid-file "$WEB_PIDFILE"); fi
    exec "$BIN/granian" "${args[@]}" "$@" "newsite.${INTERFACE}:application"
    ;;
  gunicorn)
    if [ "$INTERFACE" != wsgi ]; then
      echo "run-web: WEB_INTERFACE=asgi needs WEB_SERVER=granian" >&2
      exit 2
    fi
    export GUNICORN_BIND="$BIND" GUNICORN_WORKERS="${WEB_WORKERS:-${GUNICORN_WORKERS:-$(( $(nproc) * 2 + 1 ))}}"
    export GUNICORN_THREADS="${WEB_THREADS:-${GUNICORN_THREADS:-1}}"
    pid=(); if [ -n "${WEB_PIDFILE:-}" ]; then pid=(--pid "$WEB_PIDFILE"); fi
    exec "$BIN/gunicorn" -c deploy/gunicorn.conf.py "${pid[@]}" "$@" newsite.wsgi
    ;;
  *)
    echo "run-web: WEB_SERVER must be granian or gunicorn, not ${WEB_SERVER}" >&2
    exit 2
    ;;
esac
