"""The minimal settings module Django's cache suite runs under, in a venv that has the
django-tiered-cache wheel and nothing of newsite (tests/library/test_wheel.py copies this folder
and the fetched `cache` package of Django's tests into a temporary directory)."""

import os

SECRET_KEY = "django-cache-suite-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# `cache`: Django's tests/cache package (its Poll model is pickled into the cache).
INSTALLED_APPS = ["caching", "cache"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

TIERED_LOCATION = os.environ["SUITE_REDIS_URL"]
TIERED_NAMESPACE = os.environ["SUITE_NAMESPACE"]
CACHES = {
    "default": {
        "BACKEND": "caching.backends.TieredCache",
        "LOCATION": TIERED_LOCATION,
        "OPTIONS": {"NAMESPACE": TIERED_NAMESPACE},
    },
}
