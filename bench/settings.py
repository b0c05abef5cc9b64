"""Settings of the servers under test: newsite.settings plus the benchmark's switches.

BENCH_MODE picks what the server does (one gunicorn per mode, same worker count):
  floor       the constant view only matters; newsite cache off
  nocache     NEWSITE_CACHE["ENABLED"] = False
  cache_page  newsite cache off; /bench/cp/<path> serves the same views under Django's cache_page
  l2          newsite cache on, L1 off
  l1l2        newsite cache on with L1 (production default); Varnish runs in front of this one
"""

import os

from newsite.settings import *  # noqa: F403
from newsite.settings import CACHES, INSTALLED_APPS, MIDDLEWARE, NEWSITE_CACHE, REDIS_URL

BENCH_MODE = os.environ.get("BENCH_MODE", "l1l2")
BENCH_MODES = ("floor", "nocache", "cache_page", "l2", "l1l2")
if BENCH_MODE not in BENCH_MODES:
    raise ValueError(f"BENCH_MODE must be one of {BENCH_MODES}, not {BENCH_MODE!r}")

DEBUG = False
# The load generators run on loopback: exempt from the per-client budgets (newsite/throttle.py)
# unless the scenario names THROTTLE_EXEMPT itself (junk's hostile client: "", no exemption).
if "THROTTLE_EXEMPT" not in os.environ:
    THROTTLE_EXEMPT = ["127.0.0.0/8", "::1"]
ROOT_URLCONF = "bench.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "bench.apps.BenchConfig"]
# Outermost, so it labels the final response even when a tier replays a cached one.
MIDDLEWARE = ["bench.middleware.worker_header", *MIDDLEWARE]

NEWSITE_CACHE = {
    **NEWSITE_CACHE,
    "ENABLED": BENCH_MODE in ("l2", "l1l2"),
    "L1_ENABLED": BENCH_MODE == "l1l2",
}

# The peer (what users pick today): Django's cache_page on django-redis, its own alias and key
# prefix so it never shares entries with the newsite tiers.
CACHES = {
    **CACHES,
    "bench_peer": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "newsite-bench") + "-cp",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    },
}
BENCH_PEER_TTL = int(os.environ.get("BENCH_PEER_TTL", "3600"))
