"""Shared fixtures. Tests run against real PostgreSQL and Redis (see Makefile TEST_ENV)."""

import pytest


@pytest.fixture(autouse=True)
def fresh_cache_tiers():
    """Every test starts with an empty L2 (the test Redis db only) and an empty L1."""
    from django_redis import get_redis_connection

    import caching.core

    get_redis_connection("default").flushdb()
    caching.core.clear_local()
    yield
    caching.core.clear_local()
