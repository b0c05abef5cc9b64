"""1. A cold key hit by 4 processes x 32 threads at once: the loader runs exactly once."""

import multiprocessing
import os
import threading
import time

import pytest

import caching
from caching import keys, tags

PROCESSES, THREADS = 4, 32


def _worker(key, calls, barrier, results):
    def loader():
        with calls.get_lock():
            calls.value += 1
        time.sleep(0.3)  # long enough for every other caller to arrive while it runs
        return {"loaded_by": os.getpid()}

    seen = []

    def call():
        barrier.wait()
        fetched = caching.fetch(key, loader, kind="article", tags=[tags.article_tag(1)])
        seen.append((fetched.value["loaded_by"], fetched.source))

    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(seen)


@pytest.mark.slow
def test_cold_key_loads_once_across_processes():
    ctx = multiprocessing.get_context("fork")
    calls = ctx.Value("i", 0)
    barrier = ctx.Barrier(PROCESSES * THREADS, timeout=20)
    results = ctx.Queue()
    key = keys.article_key(1)
    procs = [ctx.Process(target=_worker, args=(key, calls, barrier, results)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    seen = [item for _ in procs for item in results.get(timeout=25)]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0

    assert calls.value == 1
    assert len(seen) == PROCESSES * THREADS
    assert len({loaded_by for loaded_by, _ in seen}) == 1  # everybody got the one loaded value
    assert {source for _, source in seen} <= {caching.MISS, caching.HIT_L2}
