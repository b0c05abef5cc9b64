"""caching.afetch(): fetch() for async views. An L1 hit completes without suspending (no thread,
nothing awaited), an L2 hit runs no thread either, and a cold key hit by many tasks - in one
process, and in several processes mixing tasks and sync threads - runs its loader once."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading

import pytest

import caching
from caching import async_fetch, fetcher
from tests.aio_support import arun, hit_without_suspending

from .conftest import cache_settings

KIND = "article"


def test_an_l1_hit_awaits_nothing():
    key = "afetch:l1"
    first = arun(caching.afetch(key, lambda: {"v": 1}, kind=KIND, tags=["afetch-tag:l1"]))
    assert (first.value, first.source) == ({"v": 1}, caching.MISS)
    hit = hit_without_suspending(lambda: caching.afetch(key, lambda: "unused", kind=KIND))
    assert (hit.value, hit.source) == ({"v": 1}, caching.HIT_L1)
    # The sync face reads the same L1.
    assert caching.fetch(key, lambda: "unused", kind=KIND).source == caching.HIT_L1


def test_an_l2_hit_runs_no_thread(monkeypatch):
    key = "afetch:l2"
    caching.fetch(key, lambda: "from sync", kind=KIND)
    fetcher.clear_local()

    def no_thread(*args, **kwargs):
        raise AssertionError("afetch hopped to a thread on an L2 hit")

    monkeypatch.setattr(async_fetch, "sync_to_async", no_thread)
    fetched = arun(caching.afetch(key, lambda: "unused", kind=KIND))
    assert (fetched.value, fetched.source) == ("from sync", caching.HIT_L2)
    assert hit_without_suspending(lambda: caching.afetch(key, lambda: "unused", kind=KIND)).source == caching.HIT_L1


@pytest.mark.parametrize("flavour", ["async loader", "sync loader"])
def test_concurrent_tasks_load_a_cold_key_once(flavour):
    """64 tasks ask for one cold key; the loader holds until all of them have called afetch,
    so each one races the single load."""
    n, key = 64, f"afetch:flight:{flavour[0]}"
    calls, entered, all_in = [], [0], threading.Event()

    def load():
        calls.append(1)
        assert all_in.wait(10), f"only {entered[0]} of {n} callers arrived"
        return {"loads": len(calls)}

    async def aload():
        calls.append(1)
        for _ in range(10_000):
            if all_in.is_set():
                return {"loads": len(calls)}
            await asyncio.sleep(0.001)
        raise AssertionError(f"only {entered[0]} of {n} callers arrived")

    async def caller():
        entered[0] += 1
        if entered[0] == n:
            all_in.set()
        return await caching.afetch(key, aload if flavour == "async loader" else load, kind=KIND)

    async def main():
        return await asyncio.gather(*(caller() for _ in range(n)))

    results = arun(main())
    assert len(calls) == 1
    assert {r.value["loads"] for r in results} == {1}
    assert {r.source for r in results} == {caching.MISS}
    again = arun(caching.afetch(key, load, kind=KIND))
    assert (again.source, len(calls)) == (caching.HIT_L1, 1)


def test_a_cancelled_caller_cancels_neither_the_load_nor_the_others():
    key = "afetch:cancel"
    calls = []

    async def main():
        release = asyncio.Event()

        async def loader():
            calls.append(1)
            await release.wait()
            return "loaded"

        first = asyncio.ensure_future(caching.afetch(key, loader, kind=KIND))
        second = asyncio.ensure_future(caching.afetch(key, loader, kind=KIND))
        while not calls:
            await asyncio.sleep(0.001)
        first.cancel()  # its client went away mid-load
        await asyncio.sleep(0.01)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    fetched = arun(main())
    assert (fetched.value, len(calls)) == ("loaded", 1)
    assert caching.fetch(key, lambda: "unused", kind=KIND).value == "loaded"  # the load was kept


def test_a_loader_error_reaches_every_waiting_task_and_nothing_is_cached():
    key = "afetch:error"

    async def failing():
        await asyncio.sleep(0.01)
        raise LookupError("gone")

    async def main():
        return await asyncio.gather(*(caching.afetch(key, failing, kind=KIND) for _ in range(5)),
                                    return_exceptions=True)

    errors = arun(main())
    assert all(isinstance(e, LookupError) for e in errors)
    assert arun(caching.afetch(key, lambda: "now", kind=KIND)).value == "now"


PROCESSES, TASKS, THREADS = 4, 16, 4
CALLERS = PROCESSES * (TASKS + THREADS)


def _worker(key, calls, entered, all_entered, barrier, results):
    def wait_all():
        if not all_entered.wait(timeout=30):
            raise RuntimeError(f"only {entered.value} of {CALLERS} callers arrived")

    def load():
        with calls.get_lock():
            calls.value += 1
        wait_all()
        return {"loaded_by": os.getpid()}

    async def aload():
        with calls.get_lock():
            calls.value += 1
        await asyncio.to_thread(wait_all)
        return {"loaded_by": os.getpid()}

    def announce():
        with entered.get_lock():
            entered.value += 1
            if entered.value == CALLERS:
                all_entered.set()

    seen = []

    def sync_caller():
        announce()
        fetched = caching.fetch(key, load, kind=KIND)
        seen.append((fetched.value["loaded_by"], fetched.source, "sync"))

    async def async_caller():
        announce()
        fetched = await caching.afetch(key, aload, kind=KIND)
        seen.append((fetched.value["loaded_by"], fetched.source, "async"))

    async def main():
        await asyncio.gather(*(async_caller() for _ in range(TASKS)))

    barrier.wait()
    threads = [threading.Thread(target=sync_caller) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    arun(main())
    for thread in threads:
        thread.join()
    results.put(seen)


@pytest.mark.slow
def test_cold_key_loads_once_across_processes_tasks_and_threads():
    """4 processes, each with 16 tasks on afetch and 4 threads on fetch, ask for one cold key;
    the loader holds until all 80 callers are in: one load in all."""
    ctx = multiprocessing.get_context("fork")
    calls, entered = ctx.Value("i", 0), ctx.Value("i", 0)
    all_entered = ctx.Event()
    barrier = ctx.Barrier(PROCESSES, timeout=30)
    results = ctx.Queue()
    key = "afetch:processes"
    with cache_settings(LEASE_WAIT=60.0, LEASE_TTL=60.0):
        caching.fetch("afetch:warm", lambda: "warm", kind=KIND)  # scripts loaded before the fork
        procs = [ctx.Process(target=_worker, args=(key, calls, entered, all_entered, barrier, results))
                 for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        seen = [item for _ in procs for item in results.get(timeout=90)]
        for proc in procs:
            proc.join(10)
            assert proc.exitcode == 0

    assert calls.value == 1
    assert len(seen) == CALLERS
    assert len({loaded_by for loaded_by, _, _ in seen}) == 1
    assert {source for _, source, _ in seen} <= {caching.MISS, caching.HIT_L2, caching.HIT_L1}
    assert {how for _, _, how in seen} == {"sync", "async"}
