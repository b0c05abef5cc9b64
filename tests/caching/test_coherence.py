"""Invariants behind the seven properties: L1 refuses fills overtaken by an invalidation, Redis
metadata is bounded (everything but the sequence expires), invalidation removes L2 entries."""

import time

import pytest

import caching
from caching import engine, fetcher, keys, metrics
from caching.l1 import Put, entry
from tests.caching import names

from .conftest import cache_settings


def _entry(tags):
    return entry("old", 0.0, tuple(tags), 100, time.monotonic() + 30, metrics.stats_for("article").prefix)


def test_l1_refuses_a_fill_overtaken_by_an_invalidation_or_a_clear():
    l1 = engine.default().l1
    mark = l1.since()
    l1.invalidate(mark.seq + 1, ["article:1"])  # the broadcast lands between L2 read and L1 put
    assert l1.put("article:1", _entry(["article:1"]), mark) is Put.REFUSED
    assert l1.get("article:1") is None
    assert l1.put("article:2", _entry(["article:2"]), mark) is Put.STORED  # other tags unaffected

    mark = l1.since()
    l1.clear()  # subscription lost meanwhile
    assert l1.put("article:3", _entry([]), mark) is Put.REFUSED


def test_invalidation_removes_l2_entries_and_metadata_expires():
    redis = engine.redis_client()
    ns = fetcher.current().namespace
    with_tags = dict(kind="article", tags=["article:1", "articles"])
    caching.fetch(names.article_key(1), lambda: "a", **with_tags)
    caching.fetch(names.article_key(2), lambda: ["a"], kind="homepage_feed", tags=["articles"])
    caching.invalidate_tags(["articles"])
    assert redis.get(keys.value_key(ns, names.article_key(1))) is None
    assert redis.get(keys.value_key(ns, names.article_key(2))) is None
    caching.fetch(names.article_key(1), lambda: "b", **with_tags)

    checked = set()
    for name in redis.scan_iter(match=ns + ":*"):  # a test may scan; request paths never do
        if name.decode() != keys.sequence_key(ns):
            assert redis.ttl(name) > 0, name
            checked.add(name.decode())
    assert keys.value_key(ns, names.article_key(1)) in checked, f"the scan saw the refilled entry: {checked}"
    assert len(checked) > 1, "and its metadata (tags)"


def test_l1_refuses_an_l2_value_loaded_before_an_invalidation_it_knows():
    """A value still in L2 after its tag was invalidated (e.g. while a huge bucket is deleted in
    chunks) is served as superseded and never enters L1: it carries the sequence its load began at."""
    redis = engine.redis_client()
    ns = fetcher.current().namespace
    key = names.article_key(41)
    assert caching.fetch(key, lambda: "old", kind="article", tags=["article:41"]).source == caching.MISS
    old_envelope = redis.get(keys.value_key(ns, key))
    caching.invalidate_tags(["article:41"])
    redis.set(keys.value_key(ns, key), old_envelope, px=60_000)  # the old value, back in L2
    fetched = caching.fetch(key, lambda: "unused", kind="article", tags=["article:41"])
    assert (fetched.value, fetched.source, fetched.superseded) == ("old", caching.HIT_L2, True)
    assert engine.default().l1.get(key) is None


@pytest.mark.parametrize("l1", [True, False])
def test_a_read_right_after_our_own_invalidation_is_stored(l1):
    """The sequence of an invalidation is compared with the (millisecond) time a cold key's
    lease was taken; one this process made just before its read - often the same millisecond -
    is known to precede the lease: the refill is stored, not refused as superseded."""
    with cache_settings(L1_ENABLED=l1):
        for i in range(30):
            key = names.article_key(100 + i)
            caching.invalidate_tags([f"article:{100 + i}"])
            fetched = caching.fetch(key, lambda i=i: f"v{i}", kind="article", tags=[f"article:{100 + i}"])
            assert (fetched.source, fetched.superseded) == (caching.MISS, False), i
            fetcher.clear_local()
            assert caching.fetch(key, lambda: "again", kind="article").source == caching.HIT_L2, i
