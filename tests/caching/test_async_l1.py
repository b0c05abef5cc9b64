"""An async L1 lookup never blocks the event loop (caching/l1.py L1.aget, used by afetch and
TieredCache's a* methods). What a sync lookup sleeps on - a broadcast message that reached the
process but is not applied yet (APPLY_WAIT), L1's lock held by another thread, a lapse of trust -
an async one awaits, so the loop's other tasks run meanwhile.

The shape of each test: the lookup is the loop's first task, a ticker its second; the ticker,
on its first tick, releases what the lookup waits for (the stalled subscriber, the lock). A
lookup that blocked the loop could not let the ticker run: it would give up (the message: an
L2 read instead of the L1 hit, counted in held_back) or wait for the holder's own timeout (the
lock). No timing is asserted: which tier answered, and who released the lock."""

from __future__ import annotations

import asyncio
import threading
import time

import caching
from caching import engine
from caching.l1 import L1, VALUE, entry
from tests.aio_support import arun, completes_without_suspending
from tests.caching import names

KIND = "article"


def _stall_subscriber():
    """Make this process's subscriber sit on the next message it reads (as a thread the OS
    does not schedule would) until the returned event is set; then it applies it as usual."""
    sub = engine.default().subscriber
    apply, release = sub._apply, threading.Event()

    def stalled(data):
        release.wait(10)
        sub._apply = apply
        apply(data)

    sub._apply = stalled
    return sub, release


async def _lookup_with_ticker(lookup, on_first_tick):
    """Run `lookup` (a coroutine) as the loop's first task and a ticker as its second: the
    ticker calls `on_first_tick()` when it first runs, then ticks until the lookup is done.
    Returns (the lookup's result, ticks)."""
    ticks = [0]

    async def ticker(task):
        on_first_tick()
        while not task.done():
            ticks[0] += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(lookup)
    ticking = asyncio.ensure_future(ticker(task))
    result = await task
    await ticking
    return result, ticks[0]


def _hold_lock(l1: L1):
    """Another thread holding L1's lock (a fill, an invalidation, or a thread preempted inside
    one) until the returned event is set - or, if the loop is blocked, its own 10 s timeout:
    (the thread, the event, who released: ["ticker"] or ["timeout"] once it has)."""
    holding, release, released_by = threading.Event(), threading.Event(), []

    def holder():
        with l1._lock:
            holding.set()
            released_by.append("ticker" if release.wait(10) else "timeout")

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(10)
    return thread, release, released_by


def test_afetch_awaits_a_pending_broadcast_message_instead_of_sleeping_on_it():
    key, tag = names.article_key(9001), names.article_tag(9001)
    assert caching.fetch(key, lambda: "v1", kind=KIND, tags=[tag]).source == caching.MISS
    l1 = engine.default().l1
    sources = []
    for attempt in range(5):  # the subscriber thread may miss APPLY_WAIT on a loaded machine
        sources_before = [caching.fetch(key, lambda: "unused", kind=KIND).source for _ in range(3)]
        assert sources_before[-1] == caching.HIT_L1, sources_before  # (a held-back hit's L2 read refills L1)
        sub, release = _stall_subscriber()
        # Another tag's invalidation: our subscriber reads its echo and sits on it (the writer's
        # ack wait times out on us). L1 keeps our key, but the message is not applied yet.
        caching.invalidate_tags([names.article_tag(9100 + attempt)])
        assert sub.unapplied()
        held_back = l1.held_back
        fetched, ticks = arun(_lookup_with_ticker(caching.afetch(key, lambda: "unused", kind=KIND), release.set))
        assert fetched.value == "v1" and ticks > 0
        sources.append((fetched.source, l1.held_back - held_back))
        if fetched.source == caching.HIT_L1:
            break
    # The ticker ran while the lookup waited, released the subscriber, and the lookup read L1
    # again once the message was applied (a blocked loop: every attempt HIT-L2, held back).
    assert (caching.HIT_L1, 0) in sources, sources


def test_aget_awaits_l1s_lock_held_by_another_thread():
    l1 = L1(max_bytes=1 << 20, max_entries=100, max_item_bytes=1 << 16, tag_seq_ttl=600)
    l1.put("k", entry("v", time.time(), ("t",), 100, time.monotonic() + 30, "t"), l1.since())
    assert completes_without_suspending(l1.aget("k"))[VALUE] == "v"  # uncontended: nothing awaited
    thread, release, released_by = _hold_lock(l1)
    found, ticks = arun(_lookup_with_ticker(l1.aget("k"), release.set))
    thread.join(10)
    assert found[VALUE] == "v" and ticks > 0
    assert released_by == ["ticker"]


def test_a_lapse_of_trust_seen_by_aget_empties_l1_without_blocking():
    l1 = L1(max_bytes=1 << 20, max_entries=100, max_item_bytes=1 << 16, tag_seq_ttl=600, trust_seconds=1.0)
    lapses = []
    l1.on_lapse = lambda: lapses.append(1)
    l1.trust_until(time.monotonic())
    l1.put("k", entry("v", time.time(), ("t",), 100, time.monotonic() + 30, "t"), l1.since())
    l1.trusted_until = time.monotonic() - 0.001  # nothing heard from Redis since: trust ran out
    thread, release, released_by = _hold_lock(l1)
    found, _ = arun(_lookup_with_ticker(l1.aget("k"), release.set))
    thread.join(10)
    assert found is None and len(l1) == 0 and lapses == [1]
    assert released_by == ["ticker"]
