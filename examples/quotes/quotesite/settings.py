"""Settings of the example project: the smallest site that uses django-tiered-cache.

Redis comes from QUOTES_REDIS_URL (default redis://127.0.0.1:6379/0); everything the site caches
starts with its KEY_PREFIX, so several sites (or test runs) can share one Redis.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("QUOTES_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "caching",  # the library's app: re-reads its settings when a test overrides them
    "quotes",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    # Last: answers the views marked @cache_public from the tiers, after URL resolution.
    "caching.middleware.PublicResponseCacheMiddleware",
]

ROOT_URLCONF = "quotesite.urls"

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "quotes.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

REDIS_URL = os.environ.get("QUOTES_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY_PREFIX = os.environ.get("QUOTES_KEY_PREFIX", "quotes")

CACHES = {
    # Django's own Redis cache: the library does not need the default cache to be anything in
    # particular (caching.fetch() has its LOCATION below; its namespace starts with KEY_PREFIX).
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": KEY_PREFIX,
    },
    # Django's cache API on the two tiers: cache_page, {% cache %}, caches["pages"].get/set.
    "pages": {
        "BACKEND": "caching.backends.TieredCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": KEY_PREFIX,
        "OPTIONS": {"L1_KEY_PREFIXES": ["views.decorators.cache."]},
    },
}

# The kinds of value caching.fetch() stores: app-tier TTL and the HTTP Cache-Control of public
# responses of that kind.
TIERED_CACHE_KINDS = {
    "quote": {"ttl": 300, "max_age": 30, "s_maxage": 300, "swr": 30, "sie": 3600},
    "quote_list": {"ttl": 60, "max_age": 10, "s_maxage": 60},
}
# The fetch face's options (L1 bounds, leases, breaker, ...); the defaults suit a small site.
# LOCATION: the Redis of caching.fetch() and the response middleware (a pool of their own).
TIERED_CACHE = {"LOCATION": REDIS_URL}
