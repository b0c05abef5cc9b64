"""TieredCache's native async methods beyond Django's suite (test_django_suite_async.py): an L1
hit awaits nothing, the sync and async halves share one L1, and Redis failures go through the
one breaker with FAIL_OPEN as in the sync half."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from caching.backends import CacheUnavailable
from tests.aio_support import arun, hit_without_suspending
from tests.cache_backend.test_backend import _down, use


def test_an_l1_hit_awaits_nothing_and_both_halves_share_l1():
    with use():
        cache = caches["default"]
        stats = cache.state.stats
        cache.set("synced", {"by": "set"})  # write-through: in this process's L1
        hits = stats.l1_hit
        assert hit_without_suspending(lambda: cache.aget("synced")) == {"by": "set"}
        assert hit_without_suspending(lambda: cache.aget_many(["synced"])) == {"synced": {"by": "set"}}
        assert hit_without_suspending(lambda: cache.ahas_key("synced")) is True
        arun(cache.aset("asynced", [1, 2]))
        assert cache.get("asynced") == [1, 2]
        assert stats.l1_hit - hits == 3  # aget, aget_many, get (has_key counts nothing, as in the sync half)
        first = hit_without_suspending(lambda: cache.aget("asynced"))
        first.append("mutated")
        assert cache.get("asynced") == [1, 2]  # a fresh copy every time, as get()


def test_async_writes_drop_the_sync_halfs_l1_copy():
    with use():
        cache = caches["default"]
        cache.set("k", "v1")
        assert cache.get("k") == "v1"
        arun(cache.aset("k", "v2"))
        assert cache.get("k") == "v2"
        arun(cache.adelete("k"))
        assert cache.get("k") is None
        cache.set("n", 1)
        assert arun(cache.aincr("n", 4)) == 5
        assert cache.get("n") == 5
        arun(cache.aclear())
        assert cache.get("n") is None


def test_fail_open_degrades_through_the_breaker(isolated_tiers):
    with _down(FAIL_OPEN=True):
        cache = caches["default"]

        async def run():
            assert await cache.aget("a", "dflt") == "dflt"
            assert await cache.aset_many({"a": 1, "b": 2}) == ["a", "b"]
            assert cache.state.l2.breaker.state == "open"  # shared with the sync half
            assert cache.get("a", "sync") == "sync"  # which now skips the network too
            assert await cache.aadd("a", 1) is False
            assert await cache.adelete("a") is False
            assert await cache.ahas_key("a") is False
            await cache.aset("a", 1)
            await cache.aclear()
            with pytest.raises(CacheUnavailable):
                await cache.aincr("a")

        arun(run())
        assert cache.state.degraded >= 7


def test_without_fail_open_errors_propagate(isolated_tiers):
    with _down():
        cache = caches["default"]
        with pytest.raises(CacheUnavailable):
            arun(cache.aget("a"))
        with pytest.raises(CacheUnavailable):
            arun(cache.aset("a", 1))
