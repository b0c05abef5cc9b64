"""Fixtures of the cache tests: a private redis-server on a free port, started and stopped by
the test (for the breaker test and for exact command counts)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test.utils import override_settings

from tests import support

private_redis = support.private_redis  # the fixture: a started redis-server of the test's own


def cache_settings(**overrides):
    """override_settings for NEWSITE_CACHE keys (caching re-reads its config on the signal)."""
    return override_settings(NEWSITE_CACHE={**settings.NEWSITE_CACHE, **overrides})


@pytest.fixture
def use_private_redis(private_redis):
    """Point CACHES["default"] (and so the whole cache library) at the private server."""
    caches = {"default": {**settings.CACHES["default"], "LOCATION": private_redis.url}}
    with override_settings(CACHES=caches):
        yield private_redis


@pytest.fixture(autouse=True)
def _no_other_tiers():
    """These tests are about the app tiers: the CDN outbox hook (cdn/) is set aside."""
    from caching.invalidation import on_invalidate

    saved = list(on_invalidate)
    on_invalidate.clear()
    yield
    on_invalidate[:] = saved
