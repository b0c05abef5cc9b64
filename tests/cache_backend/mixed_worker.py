"""A process of the mixed sync/async coherence test (test_mixed_coherence.py), configured like
another project (settings.configure, no newsite settings, no database).

    python -m tests.cache_backend.mixed_worker '<CACHES entry as JSON>' <role> <key> <versions>

Roles: "write-async" / "write-sync" set `key` to 1, 2, ... <versions> (aset or set) and, after
each write returns, record the version in CONTROL_KEY (a plain Redis key outside the cache's
namespace). "read-sync" / "read-async" (the latter with TASKS concurrent tasks) loop until the
writer is done: read CONTROL_KEY (r, the latest write that returned), then the cache (v): a
read that started after write r returned must see v >= r. Every process prints one JSON line
when ready and one with its counts at the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

CONTROL_KEY = "mixed-coherence:returned"
DONE = -1
TASKS = 8


def main() -> None:
    import django
    import redis
    from django.conf import settings

    params = json.loads(sys.argv[1])
    role, key, versions = sys.argv[2], sys.argv[3], int(sys.argv[4])
    settings.configure(CACHES={"default": params}, INSTALLED_APPS=[])
    django.setup()
    from django.core.cache import cache

    from caching import aio

    state = cache.state  # builds the engine and waits for the subscription
    control = redis.Redis.from_url(params["LOCATION"])
    report = {"role": role, "reads": 0, "stale": [], "l1_hits": 0}
    print(json.dumps({"ready": state.l1_live()}), flush=True)
    sys.stdin.readline()  # "go"

    def check(returned: int, value) -> None:
        report["reads"] += 1
        if (value or 0) < returned and len(report["stale"]) < 20:
            report["stale"].append([returned, value])

    def returned() -> int:
        return int(control.get(CONTROL_KEY) or 0)

    hits_before = state.stats.l1_hit
    if role == "write-sync":
        for version in range(1, versions + 1):
            cache.set(key, version)
            control.set(CONTROL_KEY, version)
            time.sleep(0.002)  # readers refill L1 between writes
        control.set(CONTROL_KEY, DONE)
    elif role == "write-async":
        async def write():
            for version in range(1, versions + 1):
                await cache.aset(key, version)
                control.set(CONTROL_KEY, version)
                await asyncio.sleep(0.002)
            control.set(CONTROL_KEY, DONE)
            await aio.aclose()

        asyncio.run(write())
    elif role == "read-sync":
        while (r := returned()) != DONE:
            check(r, cache.get(key))
    elif role == "read-async":
        async def reader():
            while (r := returned()) != DONE:
                check(r, await cache.aget(key))
                await asyncio.sleep(0)  # let the other tasks interleave

        async def read():
            await asyncio.gather(*(reader() for _ in range(TASKS)))
            await aio.aclose()

        asyncio.run(read())
    else:
        raise SystemExit(f"unknown role {role}")
    report["l1_hits"] = state.stats.l1_hit - hits_before
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
