#!/usr/bin/env bash
# Makes sure what `make test` needs is on this machine and running: PostgreSQL, Redis, and
# Varnish with varnish-modules (xkey) from Debian, plus the binaries some tests start privately:
# redis-server (breaker, hit-cost, health, Sentinel tests), the PostgreSQL server binaries
# (initdb, pg_ctl, pg_basebackup: the streaming-replica test), Chromium (the admin browser test).
# Idempotent; prints what it did. Under CI=true a test that skips for want of one of them fails
# (tests/conftest.py), so whatever a test needs is installed here.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {  # package...
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Debian installs vmods under /usr/lib/<triplet>/varnish/vmods.
if ! have varnishd || ! { ls /usr/lib/varnish/vmods/libvmod_xkey.so /usr/lib/*/varnish/vmods/libvmod_xkey.so 2>/dev/null || true; } | grep -q .; then
  echo "ensure-services: installing varnish and varnish-modules from Debian"
  apt_install varnish varnish-modules
  # The package may start a system varnishd on :6081 (its default); stop only that one, never
  # the varnishd processes tests or `make up` started.
  as_root pkill -f "varnishd.*-a :6081" 2>/dev/null || true
fi

# Debian's redis-server (and redis-cli): the shared Redis below and the private ones tests start.
if ! have redis-server || ! have redis-cli; then
  echo "ensure-services: installing redis-server from Debian"
  apt_install redis-server redis-tools
  # The package may start a system redis-server on :6379; that is the one used below anyway.
fi

# PostgreSQL: the server (the shared one below) and its binaries under /usr/lib/postgresql/<v>/bin,
# which tests/deploy/test_replica.py runs for a primary + hot standby of its own.
if ! ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl \
    /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1 || ! have psql; then
  echo "ensure-services: installing PostgreSQL from Debian"
  apt_install postgresql postgresql-client
fi

# Debian's headless Chromium + chromedriver for the admin browser test (tests/ops); selenium
# drives them by path, so no browser is ever downloaded at run time.
if ! have chromium || ! have chromedriver; then
  echo "ensure-services: installing chromium and chromium-driver from Debian"
  apt_install chromium chromium-driver
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "ensure-services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "ensure-services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
echo "ensure-services: PostgreSQL, Redis, Varnish and Chromium ready"
