"""caching.ainvalidate_tags() and caching.afetch_many(): the async twins of invalidate_tags() and
fetch_many(), on the same tiers. In one process here; readers racing writers across processes,
sync and async mixed: test_async_coherence.py."""

from __future__ import annotations

import asyncio

from django.db import OperationalError

import caching
from caching import async_fetch, engine, fetcher, invalidation, keys
from tests.aio_support import arun
from tests.caching import names

from .conftest import cache_kinds, cache_settings

KIND = "article"


def _no_thread(*args, **kwargs):
    raise AssertionError("hopped to a thread")


def test_ainvalidate_tags_drops_l1_and_l2_on_redis_asyncio_without_a_thread(monkeypatch):
    key, tag = names.article_key(7001), names.article_tag(7001)
    assert caching.fetch(key, lambda: "v1", kind=KIND, tags=[tag]).source == caching.MISS
    assert caching.fetch(key, lambda: "unused", kind=KIND).source == caching.HIT_L1
    fetcher.current()  # built: the first use of a process may build it in a thread
    monkeypatch.setattr(invalidation, "sync_to_async", _no_thread)
    assert arun(caching.ainvalidate_tags(tag)) == frozenset({tag})
    redis = engine.redis_client()
    assert redis.get(keys.value_key(fetcher.current().namespace, key)) is None
    monkeypatch.undo()
    fetched = caching.fetch(key, lambda: "v2", kind=KIND, tags=[tag])
    assert (fetched.value, fetched.source) == ("v2", caching.MISS)


def test_ainvalidate_tags_runs_the_hooks_after_the_app_tiers():
    key, tag = names.article_key(7002), names.article_tag(7002)
    caching.fetch(key, lambda: "v1", kind=KIND, tags=[tag])
    seen = []

    def hook(tags):  # a CDN outbox would write its row here: it runs in a thread
        held = engine.redis_client().get(keys.value_key(fetcher.current().namespace, key))
        seen.append((tags, held, engine.default().l1.get(key)))

    invalidation.on_invalidate.append(hook)  # the autouse fixture restores the list
    arun(caching.ainvalidate_tags([tag, ""]))
    assert seen == [(frozenset({tag}), None, None)]  # L2 and L1 were clean when the hook ran
    assert arun(caching.ainvalidate_tags([])) == frozenset() and len(seen) == 1


def test_a_fill_that_started_before_an_async_invalidation_is_refused():
    key, tag = names.article_key(7003), names.article_tag(7003)

    async def main():
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_loader():
            started.set()
            await release.wait()
            return "old"

        loading = asyncio.ensure_future(caching.afetch(key, slow_loader, kind=KIND, tags=[tag]))
        await started.wait()
        await caching.ainvalidate_tags([tag])  # the write committed while the load ran
        release.set()
        return await loading

    fetched = arun(main())
    assert (fetched.value, fetched.superseded) == ("old", True)
    assert caching.fetch(key, lambda: "new", kind=KIND, tags=[tag]).value == "new"


def _bulk(prefix):
    calls = []

    def load(keys_to_args):
        calls.append(sorted(keys_to_args))
        return {key: f"{prefix}{args}" for key, args in keys_to_args.items()}

    return load, calls


def test_afetch_many_answers_as_fetch_many_in_input_order():
    k = [names.article_key(7100 + i) for i in range(6)]
    tags_for = lambda key, value: [key]  # noqa: E731 (each entry tagged with its key)
    load, calls = _bulk("v")
    caching.fetch_many({k[0]: 0, k[1]: 1}, load, kind=KIND, tags_for=tags_for)  # k0, k1 in L1 and L2
    caching.fetch_many({k[2]: 2}, load, kind=KIND, tags_for=tags_for, use_l1=False)  # k2 in L2 only
    calls.clear()
    order = [k[3], k[2], k[0], k[4], k[1]]
    got = arun(caching.afetch_many({key: k.index(key) for key in order}, load, kind=KIND, tags_for=tags_for))
    assert list(got) == order
    assert {key: (f.value, f.source) for key, f in got.items()} == {
        k[3]: ("v3", caching.MISS), k[2]: ("v2", caching.HIT_L2), k[0]: ("v0", caching.HIT_L1),
        k[4]: ("v4", caching.MISS), k[1]: ("v1", caching.HIT_L1),
    }
    assert calls == [sorted([k[3], k[4]])]  # ONE bulk load for the misses
    again = caching.fetch_many({key: 0 for key in order}, load, kind=KIND)
    assert {f.source for f in again.values()} == {caching.HIT_L1} and len(calls) == 1


def test_afetch_many_of_l2_hits_runs_no_thread_and_an_async_loader_is_awaited(monkeypatch):
    k = [names.article_key(7200 + i) for i in range(3)]
    load, calls = _bulk("w")
    caching.fetch_many({key: i for i, key in enumerate(k)}, load, kind=KIND, use_l1=False)
    fetcher.current()
    monkeypatch.setattr(async_fetch, "sync_to_async", _no_thread)
    got = arun(caching.afetch_many({key: 0 for key in k}, load, kind=KIND))
    assert [f.source for f in got.values()] == [caching.HIT_L2] * 3
    monkeypatch.undo()

    async def aload(keys_to_args):
        await asyncio.sleep(0)
        return {key: "async" for key in keys_to_args}

    cold = names.article_key(7299)
    got = arun(caching.afetch_many({cold: 1, k[0]: 0}, aload, kind=KIND))
    assert (got[cold].value, got[cold].source, got[k[0]].source) == ("async", caching.MISS, caching.HIT_L1)


def test_afetch_many_serves_stale_values_when_the_bulk_loader_fails():
    with cache_kinds(short={"ttl": 1, "max_age": 1, "s_maxage": 1, "swr": 60, "sie": 3600}):
        key = names.article_key(7300)
        load, _ = _bulk("s")
        caching.fetch_many({key: 1}, load, kind="short", use_l1=False)

        def failing(keys_to_args):
            raise OperationalError("database down")

        got = arun(caching.afetch_many({key: 1}, failing, kind="short", refresh_within=3600))
        assert (got[key].value, got[key].source) == ("s1", caching.STALE)


def test_afetch_many_with_the_cache_off_calls_the_loader():
    with cache_settings(ENABLED=False):
        load, calls = _bulk("x")
        got = arun(caching.afetch_many({"a": 1}, load, kind=KIND))
        assert (got["a"].value, got["a"].source, len(calls)) == ("x1", caching.MISS, 1)
