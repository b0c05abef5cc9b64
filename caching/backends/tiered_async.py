"""TieredCache's async methods, native: Redis through `redis.asyncio` (caching/aio.py), L1 read
in the caller's task.

Django's BaseCache runs every `a*` method as `sync_to_async` around the sync one: a thread hop
(~50-100 us of CPU) even for an L1 hit. Here each async method is its sync twin with the Redis
call awaited: the same Lua scripts, key scheme, namespace index and announce (so every
process's L1 drops the key), the same L1 (shared with the sync methods: one L1 per process
whichever half fills it) and the same breaker and FAIL_OPEN handling. The work around the Redis
call is the sync face's own helpers (`_write_plan`/`_written`, `_many_from_l1`/`_many_done`,
...), so the halves cannot drift.

An L1 hit awaits nothing, and an L1 lookup never blocks the event loop (L1.aget: a pending
broadcast message or a busy L1 lock is awaited, not slept on). Still on a thread: binding the engine on a process's first call
(it starts the subscriber and waits up to 0.5 s for its subscription), and the Django helpers
this mixin does not override are BaseCache's, built on the native methods (aget_or_set,
aincr_version, adecr, ...).
"""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import SynchronousOnlyOperation

from caching import aio
from caching import engine as engine_module
from caching.l1 import FillGuard
from caching.l2 import L2Unavailable


class AsyncMethods:
    """Mixed into TieredCache (caching/backends/tiered.py), whose helpers it calls."""

    async def _astate(self):
        """self.state, built in a thread on first use (engine start waits for the subscription)."""
        state = self._state
        if state is None or self._generation != engine_module.generation:
            state = await sync_to_async(lambda: self.state, thread_sensitive=False)()
        return state

    # --- reads --------------------------------------------------------------------------------

    async def aget(self, key, default=None, version=None):
        state = self._state
        if state is None or self._generation != engine_module.generation:
            state = await self._astate()
        vkey = self._vkey(state, key, version)
        if state.eligible(key, vkey):
            entry = await state.l1.aget(vkey)
            if entry is not None:
                state.stats.hit_l1()
                return self._from_l1(entry)
            state.stats.miss_l1()
            since = state.l1.since()
            started = time.monotonic()
            try:
                raw, pttl = await aio.l2_for(state.l2).script("get", [vkey], [])
            except L2Unavailable as exc:
                return self._unavailable(state, exc, default)
            return self._got(state, vkey, raw, default, pttl, since, started)
        half = aio.l2_for(state.l2)
        try:
            raw = await half.call(half.client.get, vkey)
        except L2Unavailable as exc:
            return self._unavailable(state, exc, default)
        return self._got(state, vkey, raw, default)

    async def aget_many(self, keys, version=None):
        state = await self._astate()
        pairs = self._many_pairs(state, keys, version)
        l1 = state.l1
        found, eligible, plain = self._many_sorted(
            state, pairs, [await l1.aget(vkey) if l1_ok else None for _, vkey, l1_ok in pairs])
        if not eligible and not plain:
            return found
        since = state.l1.since() if state.l1 is not None else FillGuard(0, 0)
        started = time.monotonic()
        try:
            replies = await aio.l2_for(state.l2).execute(self._many_calls(eligible, plain))
        except L2Unavailable as exc:
            return self._unavailable(state, exc, found)
        return self._many_done(state, found, eligible, plain, replies, since, started)

    async def ahas_key(self, key, version=None):
        state = await self._astate()
        vkey = self._vkey(state, key, version)
        if state.eligible(key, vkey) and await state.l1.aget(vkey) is not None:
            return True
        half = aio.l2_for(state.l2)
        try:
            return bool(await half.call(half.client.exists, vkey))
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)

    # --- writes -------------------------------------------------------------------------------

    async def _adumps(self, value) -> bytes:
        """The stored bytes of `value`, pickled in the caller's task; in a thread when pickling
        must query the database (a lazy QuerySet evaluates itself: Django refuses that in an
        event loop, and its default aset, a thread hop, allowed it)."""
        try:
            return self._dumps(value)
        except SynchronousOnlyOperation:
            return await sync_to_async(self._dumps)(value)

    async def _awrite(self, state, items: list, ttl_ms: int, nx: bool) -> list:
        plan = self._write_plan(state, items, ttl_ms, nx)
        return self._written(state, plan, await aio.l2_for(state.l2).execute(plan.calls))

    async def _adelete(self, state, pairs: list) -> int:
        announces, calls = self._delete_plan(state, pairs)
        return self._deleted(state, announces, await aio.l2_for(state.l2).execute(calls))

    async def aset(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        state = await self._astate()
        vkey = self._vkey(state, key, version)
        payload = await self._adumps(value)  # a PickleError propagates before any Redis call
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:
                await self._adelete(state, [(key, vkey)])
            else:
                await self._awrite(state, [(key, vkey, payload, value)], ttl_ms, nx=False)
        except L2Unavailable as exc:
            self._unavailable(state, exc, None)

    async def aadd(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        state = await self._astate()
        vkey = self._vkey(state, key, version)
        payload = await self._adumps(value)
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:  # Django: True if the key was absent; nothing is kept
                half = aio.l2_for(state.l2)
                return not await half.call(half.client.exists, vkey)
            return bool((await self._awrite(state, [(key, vkey, payload, value)], ttl_ms, nx=True))[0])
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)

    async def aset_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        if not data:
            return []
        state = await self._astate()
        items = [(key, self._vkey(state, key, version), await self._adumps(value), value) for key, value in data.items()]
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:
                await self._adelete(state, [(key, vkey) for key, vkey, _, _ in items])
            else:
                await self._awrite(state, items, ttl_ms, nx=False)
        except L2Unavailable as exc:
            return self._unavailable(state, exc, list(data))
        return []

    async def atouch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        state = await self._astate()
        vkey = self._vkey(state, key, version)
        ttl_ms = self._ttl_ms(timeout)
        announced = [vkey] if state.eligible(key, vkey) else []
        try:
            if ttl_ms == 0:
                return await self._adelete(state, [(key, vkey)]) > 0
            exists, seq = await aio.l2_for(state.l2).script(
                "touch", [state.index_key, state.seq_key, vkey], [*state.announce_args(announced), ttl_ms]
            )
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)
        self._applied_locally(state, seq, announced)
        return bool(exists)

    async def adelete(self, key, version=None):
        state = await self._astate()
        vkey = self._vkey(state, key, version)
        try:
            return await self._adelete(state, [(key, vkey)]) > 0
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)

    async def adelete_many(self, keys, version=None):
        state = await self._astate()
        pairs = [(key, self._vkey(state, key, version)) for key in keys]
        if not pairs:
            return
        try:
            await self._adelete(state, pairs)
        except L2Unavailable as exc:
            self._unavailable(state, exc, None)

    async def aincr(self, key, delta=1, version=None):
        """incr(): atomic in Redis; CacheUnavailable even with FAIL_OPEN."""
        state = await self._astate()
        vkey = self._vkey(state, key, version)
        announced = [vkey] if state.eligible(key, vkey) else []
        reply = await aio.l2_for(state.l2).script(
            "incr", [state.index_key, state.seq_key, vkey], [*state.announce_args(announced), int(delta)]
        )
        return self._incremented(state, key, announced, reply)

    async def adecr(self, key, delta=1, version=None):
        return await self.aincr(key, -delta, version=version)

    async def aclear(self):
        """clear(): the namespace index 1,000 keys per round trip, then every process's L1."""
        state = await self._astate()
        half = aio.l2_for(state.l2)
        client = half.client

        async def run():
            while True:
                members = await client.zrange(state.index_key, 0, 999)
                if not members:
                    break
                pipe = client.pipeline(transaction=False)
                pipe.unlink(*members)
                pipe.zrem(state.index_key, *members)
                await pipe.execute()
            await half.script("clear", [state.index_key, state.seq_key], [state.engine.channel, ""])

        try:
            await half.call(run)
        except L2Unavailable as exc:
            self._unavailable(state, exc, None)
        if state.l1 is not None:
            state.l1.clear()

    async def aclose(self, **kwargs):
        """Nothing to do (close())."""
