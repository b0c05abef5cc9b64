"""Fixtures of the cache tests: a private redis-server on a free port, started and stopped by
the test (for the breaker test and for exact command counts)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test.utils import override_settings

from caching import conf
from tests import support

private_redis = support.private_redis  # the fixture: a started redis-server of the test's own


def cache_settings(**overrides):
    """override_settings for keys of the library's settings dict - whatever the project names it
    (caching.conf.settings_name(): NEWSITE_CACHE in newsite, TIERED_CACHE by default); caching
    re-reads its config on the signal."""
    name = conf.settings_name()
    return override_settings(**{name: {**getattr(settings, name, {}), **overrides}})


def cache_kinds(**kinds):
    """override_settings adding or replacing kinds in the project's kinds dict (conf.kinds_name())."""
    name = conf.kinds_name()
    return override_settings(**{name: {**getattr(settings, name, {}), **kinds}})


def metric(name: str) -> str:
    """A library metric's full name under the project's prefix (TIERED_CACHE_METRICS_NAMESPACE)."""
    return f"{conf.metrics_namespace()}_{name}"


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
