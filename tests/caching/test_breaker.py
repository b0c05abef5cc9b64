"""4. A second redis-server, stopped mid-run: every call still returns the loader's value, the
breaker opens (metric), and closes after the server is back."""

import time

import pytest
from prometheus_client import REGISTRY

import caching
from caching import fetcher, keys
from tests.aio_support import arun
from tests.caching import names

from .conftest import cache_settings, metric


def _breaker_gauge() -> float:
    return REGISTRY.get_sample_value(metric("breaker_open"), {"tier": "l2"})


@pytest.mark.slow
def test_redis_down_fails_open_behind_the_breaker(use_private_redis):
    server = use_private_redis
    with cache_settings(BREAKER_FAILURES=3, BREAKER_RESET=0.5):
        breaker = fetcher.current().l2.breaker
        for i in range(5):
            assert caching.fetch(names.article_key(i), lambda i=i: i, kind="article").value == i
        assert caching.fetch(names.article_key(0), lambda: "unused", kind="article").source == caching.HIT_L1
        assert breaker.state == "closed" and _breaker_gauge() == 0

        server.stop()
        started = time.monotonic()
        for i in range(5, 105):
            fetched = caching.fetch(names.article_key(i), lambda i=i: i, kind="article")
            assert (fetched.value, fetched.source) == (i, caching.MISS)
        reset_periods = int((time.monotonic() - started) / 0.5)
        assert breaker.state == "open" and _breaker_gauge() == 1
        # Calls stopped paying for Redis: the first 3 failures opened the breaker, then at most
        # one probe per reset period (0.5 s) reached the dead socket, however long the 100 calls
        # took on this machine.
        assert 3 <= breaker.failures <= 3 + reset_periods + 1
        # The lost subscription cleared L1, which keeps serving fresh fills meanwhile; an
        # invalidation fails open too (local L1 now, L2 replayed when Redis is back).
        tagged = {"kind": "article", "tags": ["article:0"]}
        assert caching.fetch(names.article_key(0), lambda: "again", **tagged).value == "again"
        assert caching.fetch(names.article_key(0), lambda: "unused", **tagged).source == caching.HIT_L1
        caching.invalidate_tags(["article:0"])
        assert caching.fetch(names.article_key(0), lambda: "reloaded", **tagged).value == "reloaded"
        assert fetcher.current().invalidator.pending_tags == {"article:0"}

        server.start()
        deadline = time.monotonic() + 10
        probe = 200
        while breaker.state != "closed":  # L1 misses (new keys) probe Redis once per reset period
            assert time.monotonic() < deadline, "breaker never closed"
            probe += 1
            assert caching.fetch(names.article_key(probe), lambda: "x", kind="article").value == "x"
            time.sleep(0.1)
        assert _breaker_gauge() == 0
        # The next L2 read replays the queued invalidations (the breaker may have been closed by
        # the subscriber's own calls, before any read).
        assert caching.fetch(names.article_key(998), lambda: "z", kind="article").value == "z"
        assert fetcher.current().invalidator.pending_tags == set()  # replayed
        fetched = caching.fetch(names.article_key(999), lambda: "y", kind="article")
        assert fetched.value == "y"
        assert server.client().exists(keys.value_key(fetcher.current().namespace, names.article_key(999)))  # L2 in use again


@pytest.mark.slow
def test_a_long_redis_outage_keeps_l1_filling(use_private_redis):
    """An outage longer than SUBSCRIBER_STUCK_AFTER: the subscriber is reconnecting (state
    "down"), not stuck, so L1 keeps taking fills and hot keys stay off the database. Readers in
    several threads, as in a gunicorn worker."""
    from concurrent.futures import ThreadPoolExecutor

    from caching import engine

    server = use_private_redis
    with cache_settings(BREAKER_FAILURES=3, BREAKER_RESET=0.5):
        caching.fetch(names.article_key(1), lambda: "warm", kind="article")
        assert engine.default().subscriber.wait_subscribed(5)
        server.stop()
        time.sleep(engine.SUBSCRIBER_STUCK_AFTER + 2.5)  # past the threshold, several reconnect attempts
        loads = []

        def read(n):
            return caching.fetch(names.article_key(500 + n % 4), lambda: loads.append(n) or f"v{n % 4}",
                                 kind="article").source

        with ThreadPoolExecutor(max_workers=4) as pool:
            sources = list(pool.map(read, range(200)))
        assert engine.default().subscriber_state() == "down"
        assert len(loads) <= 8 and sources.count(caching.HIT_L1) >= 190, (len(loads), sources.count(caching.HIT_L1))


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_write_invalidates_past_an_open_breaker_when_redis_answers(how):
    """A host whose breaker opened (a partition, a Redis restart) keeps it open up to
    BREAKER_RESET after Redis answers again. A write made there meanwhile must still reach L2
    and every L1: queued for replay, it left every other process serving the old value (the
    multi-host harness saw it right after a partition healed). A read still skips Redis."""
    import redis

    with cache_settings(BREAKER_FAILURES=3, BREAKER_RESET=60.0):
        face = fetcher.current()
        breaker = face.l2.breaker
        key, tag = names.article_key(7), names.article_tag(7)
        assert caching.fetch(key, lambda: "old", kind="article", tags=[tag]).source == caching.MISS
        vkey = keys.value_key(face.namespace, key)
        assert face.l2.client.exists(vkey)
        try:
            for _ in range(3):  # what three lost calls report: the breaker opens for 60 s
                breaker.failure(redis.exceptions.ConnectionError("connection lost (test)"))
            assert breaker.state == "open"
            assert caching.fetch(names.article_key(8), lambda: "db", kind="article").source == caching.MISS
            assert face.l2.client.get(keys.value_key(face.namespace, names.article_key(8))) is None  # skipped
            if how == "sync":
                caching.invalidate_tags([tag])
            else:
                arun(caching.ainvalidate_tags([tag]))
            assert not face.l2.client.exists(vkey), "the write's invalidation waited behind the breaker"
            assert breaker.state == "closed" and tag not in face.invalidator.pending_tags
        finally:
            breaker.success()
