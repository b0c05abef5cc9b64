"""The root conftest of tests/caching's run on the wheel (copied as conftest.py beside the copied
`tests` package; not named conftest.py here, so that the project's own run does not load it).

It stands in for what the project's tests/conftest.py gives tests/caching: the `slow` marker and
fresh tiers before every test. Not a FLUSHDB: the Redis db may be shared with other runs of
tests/library, so only this run's keys (its KEY_PREFIX) are deleted."""

from __future__ import annotations

import importlib.util

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (servers, several processes)")


def pytest_report_header(config):
    """Where `caching` comes from (tests/library/test_wheel.py asserts: the venv's site-packages)."""
    return f"caching from: {importlib.util.find_spec('caching').origin}"


@pytest.fixture(autouse=True)
def fresh_cache_tiers():
    """Every test starts with none of this run's keys in L2 and an empty L1; none is left after it."""
    from caching import fetcher

    _delete_this_runs_keys()
    fetcher.clear_local()
    yield
    fetcher.clear_local()
    _delete_this_runs_keys()


def _delete_this_runs_keys():
    from django.conf import settings
    from django_redis import get_redis_connection

    redis = get_redis_connection("default")  # the run's db, whatever a test pointed the library at
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    for chunk in _chunks(redis.scan_iter(match=f"{prefix}:*", count=1000), 500):
        redis.delete(*chunk)


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
