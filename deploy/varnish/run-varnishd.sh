#!/usr/bin/env bash
# Starts varnishd with deploy/varnish/default.vcl in front of the app, for dev, tests and `make up`.
#   VARNISH_LISTEN   address:port Varnish answers on        (default 127.0.0.1:8080)
#   VARNISH_ADMIN    address:port of the CLI (varnishadm -T) (default 127.0.0.1:6082)
#   BACKEND_HOST / BACKEND_PORT  the app (gunicorn/runserver) (default 127.0.0.1:8000)
#   VARNISH_BACKENDS "host:port host:port ...": several app hosts instead (round-robin + probes)
#   VARNISH_WORKDIR  -n directory                           (default .run/varnish)
#   VARNISH_STORAGE  -s argument                            (default malloc,256m)
# Pass -F as the first argument to stay in the foreground; otherwise varnishd daemonises and its
# pid is written to $VARNISH_WORKDIR/varnishd.pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
LISTEN="${VARNISH_LISTEN:-127.0.0.1:8080}"
ADMIN="${VARNISH_ADMIN:-127.0.0.1:6082}"
BACKEND_HOST="${BACKEND_HOST:-127.0.0.1}"
BACKEND_PORT="${BACKEND_PORT:-8000}"
WORKDIR="$(realpath -m "${VARNISH_WORKDIR:-.run/varnish}")"
STORAGE="${VARNISH_STORAGE:-malloc,256m}"
mkdir -p "$WORKDIR"
VCL="$WORKDIR/newsite.vcl"
if [ -n "${VARNISH_BACKENDS:-}" ]; then
  # Several app hosts ("host:port host:port ..."): default.vcl behind a round-robin director with
  # health probes (deploy/varnish/render-cluster-vcl.py, docs/scaling.md).
  # shellcheck disable=SC2086
  python3 deploy/varnish/render-cluster-vcl.py $VARNISH_BACKENDS >"$VCL"
  BACKEND_HOST="cluster" BACKEND_PORT="${VARNISH_BACKENDS// /,}"
else
# The only rewrite: the backend's host and port (the lines are unique in default.vcl).
sed -e "s/^\(    \.host = \)\"127\.0\.0\.1\";/\1\"${BACKEND_HOST}\";/" \
    -e "s/^\(    \.port = \)\"8000\";/\1\"${BACKEND_PORT}\";/" deploy/varnish/default.vcl >"$VCL"
fi
ARGS=(-a "$LISTEN" -T "$ADMIN" -f "$VCL" -n "$WORKDIR" -s "$STORAGE" -p default_grace=10)
if [ "${1:-}" = "-F" ]; then
  exec varnishd -F "${ARGS[@]}"
fi
varnishd -P "$WORKDIR/varnishd.pid" "${ARGS[@]}"
echo "varnish: http://$LISTEN -> $BACKEND_HOST:$BACKEND_PORT (pid $(cat "$WORKDIR/varnishd.pid"))"
