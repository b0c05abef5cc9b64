"""7. A hit runs zero loader calls and at most one Redis command (INFO commandstats, on a private
redis-server so other clients do not pollute the counts)."""

import pytest

import caching
from caching import engine, keys

from .conftest import cache_settings

IGNORED = {"cmdstat_info", "cmdstat_ping"}  # our own INFO calls; the subscriber's health check


def _commands(client) -> dict:
    return {k: v["calls"] for k, v in client.info("commandstats").items() if k not in IGNORED}


def _delta(before: dict, after: dict) -> dict:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def _no_loader():
    raise AssertionError("a hit must not call the loader")


@pytest.mark.slow
def test_l2_hit_is_exactly_one_get(use_private_redis):
    client = use_private_redis.client()
    key = keys.article_key(7)
    with cache_settings(L1_ENABLED=False):
        assert caching.fetch(key, lambda: {"title": "t"}, kind="article", tags=["article:7"]).source == "MISS"
        before = _commands(client)
        for _ in range(20):
            fetched = caching.fetch(key, _no_loader, kind="article", tags=["article:7"])
            assert (fetched.value, fetched.source) == ({"title": "t"}, caching.HIT_L2)
        assert _delta(before, _commands(client)) == {"cmdstat_get": 20}


@pytest.mark.slow
def test_l1_hit_is_zero_redis_commands(use_private_redis):
    client = use_private_redis.client()
    key = keys.article_key(8)
    caching.fetch(key, lambda: "v", kind="article")  # starts the subscriber
    assert engine.default().subscriber.wait_subscribed(5)
    caching.fetch(key, lambda: "v", kind="article")  # L1 was cleared on subscribe: refill
    before = _commands(client)
    for _ in range(20):
        fetched = caching.fetch(key, _no_loader, kind="article")
        assert (fetched.value, fetched.source) == ("v", caching.HIT_L1)
    assert _delta(before, _commands(client)) == {}
