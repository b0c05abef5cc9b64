"""caching.backends.TieredCache beyond Django's suite: the L1 tier, the namespace, the breaker,
configuration, the L1 race rules it relies on, metrics and the async twins."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from caching import keys
from caching import l1 as l1_module
from caching.backends import CacheUnavailable, TieredCache
from caching.l1 import EXPIRES, L1, VALUE, FillGuard, Put
from tests.cache_backend.conftest import NAMESPACE, REDIS_URL, tiered_params
from tests.support import free_port  # a port nothing listens on


@pytest.fixture
def raw():
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def use(**options):
    return override_settings(CACHES={"default": tiered_params(**options)})


def vkey_of(cache, key: str) -> str:
    return keys.value_key(cache.state.namespace, cache.make_key(key))


def test_l1_serves_hits_without_redis_and_hands_out_copies(raw):
    with use():
        cache = caches["default"]
        cache.set("story", {"tags": ["a"]})
        raw.delete(vkey_of(cache, "story"))  # behind the backend's back: no broadcast
        first = cache.get("story")
        assert first == {"tags": ["a"]}  # served by L1
        first["tags"].append("mutated")
        assert cache.get("story") == {"tags": ["a"]}  # a fresh copy every time


def test_l1_key_prefixes_and_callable_choose_what_lives_in_l1(raw):
    with use(L1_KEY_PREFIXES=["page."]):
        cache = caches["default"]
        cache.set("page.home", "p")
        cache.set("session.x", "s")
        raw.delete(vkey_of(cache, "page.home"), vkey_of(cache, "session.x"))
        assert cache.get("page.home") == "p"
        assert cache.get("session.x") is None
    with use(L1_KEY_PREFIXES=lambda key: key.endswith("!")):
        cache = caches["default"]
        assert cache.state.eligible("hot!", "v:hot!") and not cache.state.eligible("cold", "v:cold")


def test_l1_entry_never_outlives_the_redis_ttl():
    # L1's own cap far above the Redis TTL, so only the Redis TTL can bound the L1 copy; the TTL
    # is long enough that the key cannot expire before the refill, however slow the machine.
    with use(L1_TTL=3600):
        cache = caches["default"]
        cache.set("brief", "v", timeout=20)
        entry = cache.state.l1.get(vkey_of(cache, "brief"))
        assert entry is not None and entry[EXPIRES] - time.monotonic() <= 20
        # The set's own broadcast echo must be in before the clear: clear() forgets the per-key
        # sequences, so a late echo would drop the refilled copy (an extra miss, never a stale
        # read; CI once saw it).
        seq, subscriber = cache.state.l1.seen_seq, cache.state.engine.subscriber
        deadline = time.monotonic() + 10
        while subscriber.received_high < seq and time.monotonic() < deadline:
            time.sleep(0.01)
        assert subscriber.received_high >= seq
        cache.state.l1.clear()
        assert cache.get("brief") == "v"  # refilled from Redis with the remaining PTTL
        refilled = cache.state.l1.get(vkey_of(cache, "brief"))
        assert refilled is not None and refilled[EXPIRES] - time.monotonic() <= 20


def test_clear_removes_only_the_namespace(raw):
    raw.set("someone-else:key", "kept")
    with use():
        cache = caches["default"]
        cache.set_many({f"k{i}": i for i in range(1200)})  # more than one clear() batch
        assert raw.zcard(keys.index_key(NAMESPACE)) == 1200
        cache.clear()
        assert cache.get_many([f"k{i}" for i in range(1200)]) == {}
        assert raw.zcard(keys.index_key(NAMESPACE)) == 0
    assert raw.get("someone-else:key") == b"kept"


def test_index_forgets_keys_that_expired_by_themselves(raw):
    with use():
        cache = caches["default"]
        cache.set("short", 1, timeout=0.05)
        time.sleep(0.1)
        cache.set("other", 2)  # any write trims the expired members
        members = raw.zrange(keys.index_key(NAMESPACE), 0, -1)
        assert members == [vkey_of(cache, "other").encode()]


def test_ints_are_stored_raw_for_native_incr(raw):
    with use():
        cache = caches["default"]
        cache.set("hits", 41, timeout=100)
        assert raw.get(vkey_of(cache, "hits")) == b"41"
        assert cache.incr("hits", 2) == 43
        assert 0 < raw.ttl(vkey_of(cache, "hits")) <= 100  # incr keeps the TTL
        cache.set("flag", True)
        assert cache.get("flag") is True
        with pytest.raises(TypeError):
            cache.incr("flag")




def _down(**options):
    params = tiered_params(BREAKER_FAILURES=2, BREAKER_RESET=60, METRICS_LABEL="tc_down", **options)
    params["LOCATION"] = f"redis://127.0.0.1:{free_port()}/0"
    params["OPTIONS"]["NAMESPACE"] = f"{NAMESPACE}:down{len(options)}"
    return override_settings(CACHES={"default": params})


def test_fail_open_degrades_through_the_breaker(isolated_tiers):
    with _down(FAIL_OPEN=True):
        cache = caches["default"]
        assert cache.get("a", "dflt") == "dflt"
        assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
        assert cache.state.l2.breaker.state == "open"  # 2 failures: now no network at all
        assert cache.add("a", 1) is False
        assert cache.delete("a") is False
        assert cache.has_key("a") is False
        cache.set("a", 1)
        cache.clear()
        with pytest.raises(CacheUnavailable):  # counters never lose increments silently
            cache.incr("a")
        assert cache.state.degraded >= 6


def test_without_fail_open_errors_propagate(isolated_tiers):
    with _down():
        cache = caches["default"]
        with pytest.raises(CacheUnavailable):
            cache.get("a")
        with pytest.raises(CacheUnavailable):
            cache.set("a", 1)


def test_ignore_exceptions_is_accepted_as_fail_open():
    cache = TieredCache(REDIS_URL, {"OPTIONS": {"IGNORE_EXCEPTIONS": True}})
    assert cache._face.fail_open is True


@pytest.mark.parametrize("location, options", [
    ("memcached://x", {}),
    ([REDIS_URL, REDIS_URL], {}),
    (REDIS_URL, {"L1_SIZE": 3}),
    (REDIS_URL, {"L1_KEY_PREFIXES": [1]}),
    (REDIS_URL, {"L1_TTL": 0}),
])
def test_bad_configuration_is_refused(location, options):
    with pytest.raises(ImproperlyConfigured):
        TieredCache(location, {"OPTIONS": options})


def test_l1_refuses_a_fill_overtaken_by_a_key_invalidation_and_ignores_its_own_echo():
    l1 = L1(max_bytes=1 << 20, max_entries=100, max_item_bytes=1 << 16, tag_seq_ttl=60)

    def entry(value):
        return l1_module.entry(value, 0.0, ("k",), 400, time.monotonic() + 30, "tc", b"x")

    since = l1.since()  # a reader takes its mark, then reads Redis ...
    l1.invalidate(since.seq + 5, ["k"], echo=True)  # ... a write elsewhere is announced meanwhile
    assert l1.put("k", entry("old"), since) is Put.REFUSED

    l1.invalidate(since.seq + 9, ["k"])  # our own write, applied locally first
    assert l1.put("k", entry("new"), FillGuard(since.seq + 9, l1.epoch)) is Put.STORED
    assert l1.invalidate(since.seq + 9, ["k"], echo=True) == 0  # the broadcast echo
    assert l1.get("k")[VALUE] == "new"
    assert l1.invalidate(since.seq + 10, ["k"], echo=True) == 1  # a later write elsewhere
    assert l1.get("k") is None


def test_metrics_count_hits_per_tier():
    with use(METRICS_LABEL="tc_test"):
        cache = caches["default"]
        stats = cache.state.stats
        before = (stats.l1_hit, stats.l2_hit, stats.l2_miss)
        cache.set("m", 1)
        cache.get("m")
        cache.state.l1.clear()
        cache.get("m")
        cache.get("absent")
        assert (stats.l1_hit - before[0], stats.l2_hit - before[1], stats.l2_miss - before[2]) == (1, 1, 1)


def test_async_twins():
    with use():
        cache = caches["default"]

        async def run():
            await cache.aset("a", [1])
            assert await cache.aget("a") == [1]
            assert await cache.aadd("a", 2) is False
            await cache.aset("n", 1)
            assert await cache.aincr("n") == 2
            assert await cache.adelete("a") is True

        asyncio.run(run())
