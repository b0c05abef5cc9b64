"""A process of the mixed sync/async coherence test (test_mixed_coherence.py), configured like
another project (settings.configure, no newsite settings, no database).

    python -m tests.cache_backend.mixed_worker '<CACHES entry as JSON>' <role> <key> <versions>

Roles: "write-async" / "write-sync" set `key` to 1, 2, ... <versions> (aset or set) and, after
each write returns, record the version and when it returned in RETURNED_KEY (a plain Redis
sorted set outside the cache's namespace). "read-sync" / "read-async" (the latter with TASKS
concurrent tasks) loop until the writer is done: read r, the latest write that returned more
than GRACE seconds ago, then the cache (v): v >= r. TieredCache's writes do not wait for the
other processes' L1s (README: another process sees a write on its first get after the
broadcast message, milliseconds later): a read that starts right after the write returned may
still be a message ahead of its subscriber (CI saw one: 227 read after 228 returned), so the
guarantee checked is the broadcast's, bounded by GRACE. When the writer is done each reader
waits GRACE and reads the key 5 more times: the last version, from its own L1 after the first
(so L1 answers in every reader, whatever the race of the writes left). Every process prints one
JSON line when ready and one with its counts at the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

CONTROL_KEY = "mixed-coherence:done"
RETURNED_KEY = "mixed-coherence:returned"
GRACE = 0.5  # seconds: a broadcast message is applied in milliseconds; CI's load is the margin
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
        """The latest version that returned more than GRACE ago (0: none yet), or DONE."""
        if control.get(CONTROL_KEY):
            return DONE
        latest = control.zrevrangebyscore(RETURNED_KEY, time.time() - GRACE, "-inf", start=0, num=1)
        return int(latest[0]) if latest else 0

    def wrote(version: int) -> None:
        control.zadd(RETURNED_KEY, {str(version): time.time()})

    hits_before = state.stats.l1_hit
    if role == "write-sync":
        for version in range(1, versions + 1):
            cache.set(key, version)
            wrote(version)
            time.sleep(0.002)  # readers refill L1 between writes
        control.set(CONTROL_KEY, 1)
    elif role == "write-async":
        async def write():
            for version in range(1, versions + 1):
                await cache.aset(key, version)
                wrote(version)
                await asyncio.sleep(0.002)
            control.set(CONTROL_KEY, 1)
            await aio.aclose()

        asyncio.run(write())
    elif role == "read-sync":
        while (r := returned()) != DONE:
            check(r, cache.get(key))
        time.sleep(GRACE)  # the last write is older than GRACE now: every read must see it,
        for _ in range(5):  # and after the first, from this process's L1
            check(versions, cache.get(key))
    elif role == "read-async":
        async def reader():
            while (r := returned()) != DONE:
                check(r, await cache.aget(key))
                await asyncio.sleep(0)  # let the other tasks interleave

        async def read():
            await asyncio.gather(*(reader() for _ in range(TASKS)))
            await asyncio.sleep(GRACE)
            for _ in range(5):
                check(versions, await cache.aget(key))
            await aio.aclose()

        asyncio.run(read())
    else:
        raise SystemExit(f"unknown role {role}")
    report["l1_hits"] = state.stats.l1_hit - hits_before
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
