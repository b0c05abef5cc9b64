"""L2_ENABLED False ("L2 disabled", the faults benchmark's baseline): L1 and the loader only, not
one Redis command, single-flight kept, and an invalidation cleans this process's L1."""

import threading

import pytest

import caching
from caching import engine, fetcher
from tests.caching import names

from .conftest import cache_settings
from .test_hit_cost import _commands, _delta


@pytest.mark.slow
def test_l2_disabled_serves_from_l1_and_the_loader_without_any_redis_command(use_private_redis):
    client = use_private_redis.client()
    key = names.article_key(31)
    calls = []
    version = {"n": 1}
    gate = threading.Event()

    def loader():
        calls.append(1)
        gate.wait(5)
        return {"title": f"v{version['n']}"}

    with cache_settings(L2_ENABLED=False):
        before = _commands(client)
        results = []
        threads = [threading.Thread(target=lambda: results.append(caching.fetch(key, loader, kind="article",
                                                                                tags=["article:31"])))
                   for _ in range(8)]
        for t in threads:
            t.start()
        gate.set()
        for t in threads:
            t.join(10)
        assert len(calls) == 1  # eight racing readers of a cold key: one load (in-process single-flight)
        assert {(r.value["title"], r.superseded) for r in results} == {("v1", False)}
        assert caching.fetch(key, loader, kind="article", tags=["article:31"]).source == caching.HIT_L1
        version["n"] = 2
        caching.invalidate_tags(["article:31"])
        fetched = caching.fetch(key, loader, kind="article", tags=["article:31"])
        assert (fetched.source, fetched.value["title"]) == (caching.MISS, "v2")
        assert engine.default().subscriber is None and engine.default().subscriber_state() == "off"
        assert fetcher.current().invalidator.pending_tags == set()  # nothing queued for a Redis that is not used
        assert _delta(before, _commands(client)) == {}
        assert not client.keys("*")
