"""The minimal settings module the library's own tests (tests/caching) run under, in a venv that
has the django-tiered-cache wheel and nothing of newsite (tests/library/test_wheel.py copies
tests/caching, its helper modules, this file and conftest_caching.py into a temporary directory).

The library's default names throughout: TIERED_CACHE / TIERED_CACHE_KINDS, metrics tiered_*.
"""

import os

SECRET_KEY = "tiered-cache-tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# auth (and the contenttypes it needs): test_stale_set.py races fills against updates of a Group row.
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "caching"]
# SQLite: the tests need a database with transactions and on_commit, nothing of PostgreSQL's.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

# The fetch face's L2 is the django-redis connection of CACHES["default"] (tests/caching's
# use_private_redis fixture moves it to a private server by overriding CACHES), as in newsite;
# test_location.py covers TIERED_CACHE["LOCATION"]. A Redis db and a key prefix of this run.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ["CACHING_REDIS_URL"],
        "KEY_PREFIX": os.environ["CACHING_KEY_PREFIX"],
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
            "CONNECTION_POOL_KWARGS": {"max_connections": 64, "health_check_interval": 30},
        },
    },
}

TIERED_CACHE = {}
# The kinds the tests fetch under (their rows as in newsite's NEWSITE_CACHE_KINDS); tests add
# short-lived ones of their own with override_settings.
TIERED_CACHE_KINDS = {
    "article": {"ttl": 3600, "max_age": 60, "s_maxage": 3600, "swr": 60, "sie": 86400},
    "homepage_feed": {"ttl": 60, "max_age": 30, "s_maxage": 60, "swr": 30, "sie": 3600},
    "search_results": {"ttl": 300, "max_age": 60, "s_maxage": 300, "swr": 60, "sie": 3600,
                       "admission": "second_hit"},
}
