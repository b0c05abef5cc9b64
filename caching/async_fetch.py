"""`afetch()`: fetch() for async views, on the same engine, L1, leases and fill scripts.

afetch(key, loader, kind=..., tags=...):
  L1 hit        -> the L1 entry, in the caller's task: no thread, nothing awaited (L1.aget:
                   a broadcast message not applied yet, or L1's lock held by another thread,
                   is awaited with asyncio.sleep - the event loop is never blocked)
  L1 miss       -> single-flight per key among the event loop's tasks: the first starts the
                   fetch as a task of its own, every caller (the first included) awaits it
                   shielded, so a caller cancelled (a client gone) neither cancels the load nor
                   the others
                -> SET value-key "~token" NX GET on redis.asyncio (caching/aio.py), as fetch():
                   fresh            -> HIT-L2, backfill L1 (in the task)
                   another's lease  -> poll the same read with asyncio.sleep until the value
                                       appears or the lease is ours (no thread is held while
                                       another process loads)
                   absent / stale / picked for an early refresh / Redis unreachable
                                    -> the sync face's load path in a thread (FetchFace's
                                       _load_and_fill, _refresh, _load_without_l2: the loader,
                                       fill.lua, the replica fence, stale-if-error), as one
                                       sync_to_async(thread_sensitive=True) call: Django's
                                       ORM needs that thread anyway

Across processes it is one load by the same value-key lease fetch() takes; a sync fetch() and
an afetch() of one key in one process also make one load (the second waits on the first's
lease). `loader` is a plain callable (run in the thread) or an async one (awaited on the
caller's event loop from that thread, through async_to_sync).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async

from caching import aio, bulk, keys, lifetime, metrics
from caching import conf as conf_module
from caching import fetcher as fetcher_module
from caching.broadcast import DOWN
from caching.envelope import LEASE_MARK, Envelope, is_lease
from caching.fetcher import CallersOwnRefusal, FetchFace, LeaseTimeout, Load
from caching.l1 import HIT_L2, MISS, Fetched
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)

_LEASE_POLL_MIN, _LEASE_POLL_MAX = 0.002, 0.05  # s, as fetch()'s wait for a lease holder

# event loop -> (the face, {key: (the task fetching it, face.applied_mark() when it began)}): a loop's
# flights die with it, and a new face (settings changed, fork) starts with none.
_flights: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def afetch(key: str, loader, *, kind: str, tags=(), bypass_l1: bool = False) -> Fetched:
    """fetch()'s contract, awaitable: the cached value of `key` as a Fetched, `loader` run at
    most once across every process and task when it is cold or expired. Raises LeaseTimeout
    as fetch() does. Cost: an L1 hit as fetch()'s plus a coroutine (no thread, no await);
    an L2 hit one redis.asyncio command; a cold miss that command and one thread hop for the
    load and its fill."""
    if not conf_module.get().enabled:
        with lifetime.measure():
            return Fetched(await _run(loader), MISS, time.time())
    face = fetcher_module._face
    if face is None:  # the process's first fetch: building the engine waits for its subscription
        face = await sync_to_async(fetcher_module.current, thread_sensitive=False)()
    l1 = face.l1
    if l1 is not None and not bypass_l1:
        entry = await l1.aget(key)  # awaits only a pending broadcast or a busy lock, never blocks
        if entry is not None:
            return fetcher_module.l1_served(entry)
    return await _single_flight(face, key, loader, kind, tags)


async def afetch_many(keys_to_args: dict, bulk_loader, *, kind: str, tags_for=None, use_l1: bool = True,
                      refresh_within: float = 0.0) -> dict:
    """fetch_many()'s contract, awaitable (caching/bulk.py): L1 in the caller's task (awaited,
    never blocking: L1.aget), then one redis.asyncio round trip for the rest, then - only when
    something is to load - ONE `bulk_loader({key: args})` call and the pipeline of fill.lua
    calls in a thread (the loader's database is sync; an async `bulk_loader` is awaited on the
    caller's loop from there). Returns {key: Fetched} in the input order. Cost: a page of L1
    or L2 hits runs no thread."""
    keys_to_args = dict(keys_to_args)
    if not conf_module.get().enabled:
        with lifetime.measure():
            loaded = await _run(lambda: bulk_loader(dict(keys_to_args)), iscoroutinefunction(bulk_loader))
        now = time.time()
        return {key: Fetched(loaded.get(key), MISS, now) for key in keys_to_args}
    face = fetcher_module._face
    if face is None:
        face = await sync_to_async(fetcher_module.current, thread_sensitive=False)()
    l1 = face.l1 if use_l1 else None
    if l1 is not None:
        hits = [fetcher_module.l1_served(entry) if (entry := await l1.aget(key)) is not None else None
                for key in keys_to_args]
    else:
        hits = [None] * len(keys_to_args)
    result, missing = bulk.from_l1(l1, keys_to_args, hits)
    if missing:
        guard = face.fill_guard()
        try:
            replies = await aio.l2_for(face.l2).execute(bulk.read_calls(face, missing))
        except L2Unavailable:
            replies = None
        raws, start_seq = bulk.read_replies(replies, missing)
        to_load, stale = bulk.from_l2(face, missing, raws, start_seq, result, guard, use_l1, refresh_within)
        if to_load:
            loader = async_to_sync(bulk_loader) if iscoroutinefunction(bulk_loader) else bulk_loader
            await _in_thread(bulk.load_and_fill, face, {key: keys_to_args[key] for key in to_load}, stale, start_seq,
                             result, loader, kind, tags_for, use_l1, guard)
    return {key: result[key] for key in keys_to_args}


async def aget_or_load(key: str, loader, *, kind: str, tags=()):
    """(await afetch(...)).value."""
    return (await afetch(key, loader, kind=kind, tags=tags)).value


async def _run(loader, is_async: bool | None = None):
    if iscoroutinefunction(loader) if is_async is None else is_async:
        return await loader()
    return await sync_to_async(loader, thread_sensitive=True)()


def _in_flight(face: FetchFace) -> dict:
    loop = asyncio.get_running_loop()
    held = _flights.get(loop)
    if held is None or held[0] is not face:
        held = _flights[loop] = (face, {})
    return held[1]


def _retrieved(task: asyncio.Task) -> None:
    """Mark a flight's exception retrieved: when every caller was cancelled nobody awaits it."""
    if not task.cancelled():
        task.exception()


async def _single_flight(face: FetchFace, key, loader, kind, tags) -> Fetched:
    """Join the loop's fetch of `key` in flight, unless an invalidation reached this process
    (or a clear) since it began, applied or not (FetchFace.joinable): its read may predate a write that has returned since, and a caller that
    began after that write must not be answered the older value (read-your-writes; the tasks
    of a loop interleave at every await, so a flight's L2 read may be long issued). Then a new
    fetch starts, and later callers join that one."""
    stats = metrics.stats_for(keys.key_prefix_of(key))
    if face.l1 is not None:
        stats.miss_l1()
    flights = _in_flight(face)
    flight = flights.get(key)
    seen = face.applied_mark()
    if flight is not None and face.joinable(flight[1], seen):
        try:
            return await asyncio.shield(flight[0])
        except CallersOwnRefusal:
            pass  # the leader's loader refused its own caller (a per-client budget): not ours
        # Load for ourselves, outside the single-flight; across processes the lease still holds.
        return await _fetch(face, _load(face, key, loader, kind, tags, stats))
    task = asyncio.ensure_future(_fetch(face, _load(face, key, loader, kind, tags, stats)))
    flight = flights[key] = (task, seen)
    task.add_done_callback(_retrieved)
    task.add_done_callback(lambda _: flights.pop(key, None) if flights.get(key) is flight else None)
    return await asyncio.shield(task)


def _load(face: FetchFace, key, loader, kind, tags, stats) -> Load:
    """A Load whose loader the sync face can call in its thread."""
    if iscoroutinefunction(loader):
        loader = async_to_sync(loader)
    return Load(key, keys.value_key(face.namespace, key), loader, kind, tags, stats, face.fill_guard())


async def _in_thread(fn, *args) -> Fetched:
    return await sync_to_async(fn, thread_sensitive=True)(*args)


async def _read(face: FetchFace, half: aio.AsyncL2, vkey: str) -> tuple[str, int, bytes | None]:
    """FetchFace.read_l2 on redis.asyncio: SET NX GET with a new lease (lease, its ms, the answer)."""
    lease = LEASE_MARK + os.urandom(8).hex()
    lease_ms = int(face.conf.lease_ttl * 1000)
    raw = await half.get_or_lease(vkey, lease, lease_ms)
    sub = face.engine.subscriber
    if sub is not None and sub.state == DOWN:
        sub.redis_is_back()
    if face.invalidator.pending_tags:
        await _in_thread(face.invalidator.replay_pending)
    return lease, lease_ms, raw


def _hit_l2(face: FetchFace, load: Load, env: Envelope) -> Fetched:
    load.stats.hit_l2()
    superseded = face.fills.put_envelope(load.key, env, load.stats, load.guard)
    return Fetched(env.value, HIT_L2, env.filled_at, superseded)


async def _fetch(face: FetchFace, load: Load) -> Fetched:
    """FetchFace._fetch with the reads and the lease wait awaited, the loads in a thread."""
    half = aio.l2_for(face.l2)
    try:
        lease, lease_ms, raw = await _read(face, half, load.vkey)
    except L2Unavailable:
        return await _in_thread(face._load_without_l2, load, None)
    if raw is None:  # absent: the value key now holds our lease
        load.stats.miss_l2()
        return await _in_thread(face._load_and_fill, load, lease, lease_ms, None)
    if is_lease(raw):  # absent, another process is loading it
        load.stats.miss_l2()
        return await _wait_for_holder(face, half, load, lease, lease_ms)
    env = Envelope(raw)
    now = time.time()
    fresh = now < env.soft_expiry
    if fresh and not face.xfetch(env, now):
        return _hit_l2(face, load, env)
    return await _in_thread(face._refresh, load, env, fresh)


async def _wait_for_holder(face: FetchFace, half: aio.AsyncL2, load: Load, lease: str, lease_ms: int) -> Fetched:
    """FetchFace._wait_for_holder with asyncio.sleep: until the holder's value appears, its
    lease is gone (then ours: load) or LEASE_WAIT passes (LeaseTimeout)."""
    wait = face.conf.lease_wait
    deadline = time.monotonic() + wait
    delay = _LEASE_POLL_MIN
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, _LEASE_POLL_MAX)
        try:
            raw = await half.get_or_lease(load.vkey, lease, lease_ms)
        except L2Unavailable:
            return await _in_thread(face._load_without_l2, load, None)
        if raw is None:
            return await _in_thread(face._load_and_fill, load, lease, lease_ms, None)
        if not is_lease(raw):
            return _hit_l2(face, load, Envelope(raw))
    metrics.count_invalidation("lease_timeout")
    logger.warning("cache lease wait for %s exceeded %.1fs: answering busy", load.key, wait)
    raise LeaseTimeout(load.key, wait)
