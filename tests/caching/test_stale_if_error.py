"""5. A loader raising with a stale entry present: the stale value is served, the entry kept."""

import time

import pytest
from django.db import OperationalError

import caching
from caching import engine, fetcher, keys
from tests.caching import names

from .conftest import cache_kinds, cache_settings


def _db_down():
    raise OperationalError("database is down")


@pytest.fixture
def short_kind():
    with cache_kinds(tiny={"ttl": 1, "swr": 30, "sie": 60}), cache_settings(L1_ENABLED=False, TTL_JITTER=0):
        yield "tiny"


def test_loader_error_serves_stale_and_keeps_the_entry(short_kind):
    key = names.article_key(5)
    assert caching.fetch(key, lambda: "old", kind=short_kind).source == caching.MISS
    time.sleep(1.1)  # past the soft expiry, inside the stale window

    for _ in range(2):  # the lease is released after a failure: the next call retries the loader
        fetched = caching.fetch(key, _db_down, kind=short_kind)
        assert (fetched.value, fetched.source) == ("old", caching.STALE)
    assert engine.redis_client().exists(keys.value_key(fetcher.current().namespace, key))

    with pytest.raises(ValueError):  # not a named loader error: propagates, entry still kept
        caching.fetch(key, lambda: int("x"), kind=short_kind)
    assert engine.redis_client().exists(keys.value_key(fetcher.current().namespace, key))

    fetched = caching.fetch(key, lambda: "new", kind=short_kind)
    assert (fetched.value, fetched.source) == ("new", caching.MISS)


def test_loader_error_without_stale_entry_propagates(short_kind):
    with pytest.raises(OperationalError):
        caching.fetch(names.article_key(6), _db_down, kind=short_kind)
    assert caching.fetch(names.article_key(6), lambda: "ok", kind=short_kind).value == "ok"
