"""CPU per call of an async L1 hit: TieredCache's native `await cache.aget()` against Django's
default async face (BaseCache.aget: sync_to_async around get(), a thread hop), with the sync
`cache.get()` beside them; and `await caching.afetch()` against fetch() run in a thread.

    .venv/bin/python -m bench.async_calls [redis://127.0.0.1:6379/13] [--rounds 5]

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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
