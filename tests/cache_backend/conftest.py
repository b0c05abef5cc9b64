"""Fixtures of the Django cache backend tests (caching.backends.TieredCache).

Django's own cache suite is fetched from the installed Django's sdist at collection time
(fetch_django_cache_tests.py, cached under .venv/django-tests/); if it cannot be downloaded the
suite module is skipped with the reason.
"""

from __future__ import annotations

import sys

import pytest
import redis
from django.conf import settings

from tests.cache_backend import fetch_django_cache_tests

try:
    _SUITE_DIR = fetch_django_cache_tests.fetch()
except (fetch_django_cache_tests.FetchError, OSError) as exc:
    SUITE_ERROR = str(exc)
else:
    SUITE_ERROR = None
    if str(_SUITE_DIR) not in sys.path:
        sys.path.insert(0, str(_SUITE_DIR))


# Read once, from the project settings (tests override CACHES later).
NAMESPACE = f"{settings.CACHES['default'].get('KEY_PREFIX') or 'newsite'}:djtc"
REDIS_URL = settings.REDIS_URL


def tiered_params(**options) -> dict:
    """CACHES entry of the backend on the test Redis db, in a namespace of its own."""
    return {
        "BACKEND": "caching.backends.TieredCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"NAMESPACE": NAMESPACE, **options},
    }


@pytest.fixture(autouse=True)
def fresh_cache_tiers():
    """Overrides the project-wide fixture: CACHES["default"] is our backend in these tests, so
    django_redis's get_redis_connection cannot be used; flush the test db with a raw client."""
    from caching import engine

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    engine.clear_local()
    yield
    engine.clear_local()


@pytest.fixture
def isolated_tiers():
    """For tests that build tiers they should not leave behind (a Redis that is down keeps a
    subscriber thread retrying): drop this process's engines afterwards."""
    from caching import engine

    yield
    engine.reset()


@pytest.fixture(scope="package", autouse=True)
def _drop_tiers_after_package():
    """Leave no subscriber threads of ours to the rest of the suite."""
    yield
    from caching import engine

    engine.reset()
