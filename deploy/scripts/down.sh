#!/usr/bin/env bash
# `make down`: stops what `make up` started (pidfiles in .run/). Each of them runs in a session of
# its own (the web server under setsid, celery --detach and varnishd call setsid), so once the main
# process is gone, whatever is left in its session (a gunicorn worker, a Celery pool process, the
# varnish cache child) is stopped too: nothing `make up` started outlives `make down`.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN=.run
OWN_SID=$(ps -o sid= -p $$ | tr -d ' ')

session_members() {  # sid -> pids still in that session
  [ -n "$1" ] && pgrep -s "$1" 2>/dev/null || true
}

for pidfile in "$RUN/varnish/varnishd.pid" "$RUN/celery-beat.pid" "$RUN/celery-worker.pid" "$RUN/web.pid" "$RUN/gunicorn.pid"; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    sid=$(ps -o sid= -p "$pid" | tr -d ' ')
    # Only a session of its own (it daemonised with setsid), never ours or our caller's.
    [ "$sid" != "$OWN_SID" ] || sid=""
    kill -TERM "$pid"
    for _ in $(seq 1 60); do  # up to 15 s for a graceful stop of the whole session
      if ! kill -0 "$pid" 2>/dev/null && [ -z "$(session_members "$sid")" ]; then break; fi
      sleep 0.25
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    for left in $(session_members "$sid"); do kill -KILL "$left" 2>/dev/null || true; done
    echo "down: stopped $(basename "$pidfile" .pid) ($pid)"
  fi
  rm -f "$pidfile"
done
# The temp work directory make up gave varnishd when run as root (see up.sh).
if [ -L "$RUN/varnish" ] && [ ! -e "$RUN/varnish/varnishd.pid" ]; then
  case "$(readlink "$RUN/varnish")" in
    /tmp/newsite-varnish-*) rm -rf "$(readlink "$RUN/varnish")" ;;
  esac
  rm -f "$RUN/varnish"
fi
