#!/usr/bin/env bash
# `make down`: stops what `make up` started (pidfiles in .run/).
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN=.run
for pidfile in "$RUN/varnish/varnishd.pid" "$RUN/celery-beat.pid" "$RUN/celery-worker.pid" "$RUN/gunicorn.pid"; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "down: stopped $(basename "$pidfile" .pid) ($pid)"
  fi
  rm -f "$pidfile"
done
