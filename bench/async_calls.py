"""CPU per call of an async L1 hit: TieredCache's native `await cache.aget()` against Django's
default async face (BaseCache.aget: sync_to_async around get(), a thread hop), with the sync
`cache.get()` beside them; and `await caching.afetch()` against fetch() run in a thread.

    .venv/bin/python -m bench.async_calls [redis://127.0.0.1:6379/13] [--rounds 5]
    valgrind --tool=callgrind --separate-threads=yes \
        .venv/bin/python -m bench.async_calls [redis://...] --sync-hits 20000

`--sync-hits N`: no timing; N sync L1 hits of TieredCache.get() and N of caching.fetch() in
the main thread, for an instruction count of the sync hot path (callgrind's count of the main
thread, run with N and with a smaller N: the difference over the extra hits is the cost of one,
setup left out; the subscriber threads are stopped first, see sync_hits).

Configures Django by itself (no newsite settings, no database). CPU is the process's
(time.process_time: every thread, so a hop's executor thread counts), in microseconds per call,
the median of `rounds` interleaved rounds; wall time beside it. Writes only keys under the
"bench-async" namespace and removes them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

VALUE = {"id": 7, "title": "A headline of some length", "tags": ["a", "b", "c"]}


async def _per_call(make, n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await make()
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("location", nargs="?", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sync-hits", type=int, default=0)
    args = parser.parse_args()
    if args.sync_hits:
        return sync_hits(args.location, args.sync_hits)

    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[],
        CACHES={"default": {"BACKEND": "caching.backends.TieredCache", "LOCATION": args.location,
                            "OPTIONS": {"NAMESPACE": "bench-async"}}},
    )
    django.setup()
    from asgiref.sync import sync_to_async
    from django.core.cache import cache
    from django.core.cache.backends.base import BaseCache

    from caching import aio

    async def sync_get():  # the floor: no coroutine of the cache's own
        return cache.get("hot")

    cases = {
        "get() (sync, for scale)": (sync_get, 50_000),
        "await aget() native": (lambda: cache.aget("hot"), 50_000),
        "await aget() Django default (sync_to_async)": (lambda: BaseCache.aget(cache, "hot"), 5_000),
        "await aget() as sync_to_async(get, thread_sensitive=False)":
            (lambda: sync_to_async(cache.get, thread_sensitive=False)("hot"), 5_000),
    }

    async def run():
        await cache.aset("hot", VALUE)
        assert await cache.aget("hot") == VALUE and cache.state.l1.get(cache._vkey(cache.state, "hot", None))
        results = {label: [] for label in cases}
        for _ in range(args.rounds):
            for label, (make, n) in cases.items():
                results[label].append(await _per_call(make, n))
        await cache.aclear()
        await aio.aclose()
        return results

    results = asyncio.run(run())
    print(f"L1 hit of a small dict, median of {args.rounds} rounds (µs per call)")
    print(f"{'call':62} {'CPU':>8} {'wall':>8}")
    for label, rounds in results.items():
        cpu = statistics.median(r[0] for r in rounds)
        wall = statistics.median(r[1] for r in rounds)
        print(f"{label:62} {cpu:8.2f} {wall:8.2f}")


def sync_hits(location: str, n: int) -> None:
    """N L1 hits of TieredCache.get() and of caching.fetch() (see the module docstring)."""
    import django
    from django.conf import settings

    # Under valgrind everything runs ~50x slower, the subscriber thread included: L1's TTL and
    # trust are an hour here, so every lookup of the loops is a hit.
    slow = {"L1_TTL": 3600, "L1_TRUST_SECONDS": 3600}
    settings.configure(
        INSTALLED_APPS=["caching"],
        CACHES={"default": {"BACKEND": "caching.backends.TieredCache", "LOCATION": location,
                            "OPTIONS": {"NAMESPACE": "bench-async", **slow}}},
        TIERED_CACHE={"LOCATION": location, **slow},
        TIERED_CACHE_KINDS={"article": {"ttl": 3600, "max_age": 60, "s_maxage": 3600, "swr": 60, "sie": 86400}},
    )
    django.setup()
    from django.core.cache import cache

    import caching
    from caching import engine, fetcher

    for eng in (cache.state.engine, fetcher.current().engine):  # a subscription confirmed later empties L1
        assert eng.subscriber.wait_subscribed(120)
    for _ in range(50):
        cache.set("hot", VALUE)
        caching.fetch("bench:hot", lambda: VALUE, kind="article")
        hits = cache.state.stats.l1_hit
        if cache.get("hot") == VALUE and cache.state.stats.l1_hit > hits and \
                caching.fetch("bench:hot", None, kind="article").source == caching.HIT_L1:
            break
        engine.clear_local()
    # Under valgrind the subscriber thread cannot PING in time: it would call its connection
    # stuck and empty L1 mid-loop. Stopped here (L1 stays trusted for the hour): the lookups
    # then skip the poll of its socket (no descriptor), before and after a change alike.
    for eng in (cache.state.engine, fetcher.current().engine):
        eng.subscriber.stop()
    get, fetch = cache.get, caching.fetch
    for _ in range(n):
        get("hot")
    for _ in range(n):
        fetch("bench:hot", None, kind="article")
    assert fetch("bench:hot", None, kind="article").source == caching.HIT_L1
    print(f"{n} TieredCache.get and {n} fetch L1 hits", cache.state.stats.l1_hit)
    cache.clear()


if __name__ == "__main__":
    main()
