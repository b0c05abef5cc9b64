"""Shared fixtures. Tests run against real PostgreSQL and Redis (see Makefile TEST_ENV)."""

import pytest


@pytest.fixture(autouse=True)
def fresh_cache_tiers():
    """Every test starts with an empty L2 (the test Redis db only) and an empty L1."""
    from caching import engine, fetcher

    redis = engine.redis_client()
    if redis.connection_pool.connection_kwargs.get("db", 0) == 0:
        pytest.exit("refusing to FLUSHDB Redis db 0: run `make test`, or set REDIS_URL to a db of its own", 2)
    redis.flushdb()
    fetcher.clear_local()
    yield
    fetcher.clear_local()
