"""1. A cold key hit by 4 processes x 32 threads at once: the loader runs exactly once.

No sleeps: the loader blocks until every caller has announced it is calling fetch, so every
caller races the one load (none can arrive after it), whatever the machine's speed."""

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

import caching
from tests.caching import names

from .conftest import cache_settings

PROCESSES, THREADS = 4, 32
CALLERS = PROCESSES * THREADS


def _worker(key, calls, entered, all_entered, loaded, barrier, results):
    def loader():
        with calls.get_lock():
            calls.value += 1
        # Hold the load until all callers are in; they wait on this one (single-flight in the
        # process, the Redis lease in the others).
        if not all_entered.wait(timeout=30):
            raise RuntimeError(f"only {entered.value} of {CALLERS} callers arrived")
        loaded.set()
        return {"loaded_by": os.getpid()}

    seen = []

    def call():
        barrier.wait()
        after_the_load = loaded.is_set()
        with entered.get_lock():
            entered.value += 1
            if entered.value == CALLERS:
                all_entered.set()
        fetched = caching.fetch(key, loader, kind="article", tags=[names.article_tag(1)])
        seen.append((fetched.value["loaded_by"], fetched.source, after_the_load))

    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(seen)


@pytest.mark.slow
def test_cold_key_loads_once_across_processes():
    ctx = multiprocessing.get_context("fork")
    calls, entered = ctx.Value("i", 0), ctx.Value("i", 0)
    all_entered, loaded = ctx.Event(), ctx.Event()
    barrier = ctx.Barrier(CALLERS, timeout=30)
    results = ctx.Queue()
    key = names.article_key(1)
    # The waiters in the other processes must not give up on the lease however slowly the
    # callers arrive: the outcome may not depend on the machine's speed.
    with cache_settings(LEASE_WAIT=60.0, LEASE_TTL=60.0):
        procs = [ctx.Process(target=_worker, args=(key, calls, entered, all_entered, loaded, barrier, results))
                 for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        seen = [item for _ in procs for item in results.get(timeout=90)]
        for proc in procs:
            proc.join(10)
            assert proc.exitcode == 0

    assert calls.value == 1
    assert len(seen) == CALLERS
    assert not [s for s in seen if s[2]], "every caller called fetch before the load finished"
    assert len({loaded_by for loaded_by, _, _ in seen}) == 1  # everybody got the one loaded value
    sources = [source for _, source, _ in seen]
    # The leader's process shares its MISS; the other processes wait on the lease and read the
    # fill from L2. HIT-L1 only for a caller descheduled between announcing itself and its L1
    # lookup, which then finds the fill already there: the value is still the one load's.
    assert caching.MISS in sources
    assert set(sources) <= {caching.MISS, caching.HIT_L2, caching.HIT_L1}


def _slow_holder(key, in_load, may_return, results):
    def loader():
        in_load.set()
        may_return.wait(30)
        return "a"

    fetched = caching.fetch(key, loader, kind="article", tags=[names.article_tag(2)])
    results.put((fetched.value, fetched.source, fetched.superseded))


@pytest.mark.slow
def test_an_expired_lease_is_taken_over_and_the_late_fill_not_stored():
    """Process A takes a cold key's lease and loads for longer than LEASE_TTL; B, waiting on
    it, takes the expired lease over, loads and fills. A's late fill must not overwrite B's (A's
    lease is gone, so when its load began is unknown): A answers its own value, L2 keeps B's."""
    ctx = multiprocessing.get_context("fork")
    in_load, may_return, results = ctx.Event(), ctx.Event(), ctx.Queue()
    key = names.article_key(2)
    with cache_settings(L1_ENABLED=False, LEASE_TTL=0.3, LEASE_WAIT=10.0):
        caching.fetch(names.article_key(3), lambda: "warm", kind="article")  # scripts loaded before the fork
        holder = ctx.Process(target=_slow_holder, args=(key, in_load, may_return, results))
        holder.start()
        try:
            assert in_load.wait(30)
            fetched = caching.fetch(key, lambda: "b", kind="article", tags=[names.article_tag(2)])
            assert (fetched.value, fetched.source) == ("b", caching.MISS)  # took the expired lease over
        finally:
            may_return.set()
        assert results.get(timeout=30) == ("a", caching.MISS, False)
        holder.join(10)
        assert holder.exitcode == 0
        assert caching.fetch(key, lambda: "c", kind="article").value == "b"  # B's fill, kept


@pytest.mark.slow
def test_a_load_longer_than_its_lease_is_still_stored_when_nobody_took_the_key():
    """The value-key lease expired during a slow load and no other process leased the key:
    the fill is checked against what the process had seen before its read, and stored."""
    key = names.article_key(4)

    def slow():
        time.sleep(0.5)  # past LEASE_TTL: the lease is gone when the fill arrives
        return "slow"

    with cache_settings(L1_ENABLED=False, LEASE_TTL=0.2):
        assert caching.fetch(key, slow, kind="article", tags=[names.article_tag(4)]).source == caching.MISS
        again = caching.fetch(key, lambda: "reloaded", kind="article", tags=[names.article_tag(4)])
        assert (again.value, again.source) == ("slow", caching.HIT_L2)


def test_a_read_ahead_that_joins_a_load_in_flight_gives_its_lease_back():
    """The WSGI front's early L2 read (EarlyRead) took a cold key's lease; meanwhile another thread
    of the process became the key's leader and waits for that lease's holder. The request with
    the read ahead joins the leader as a follower: it must give its lease back, or the leader
    (and every process polling the key) waits LEASE_WAIT and answers busy."""
    from caching import fetcher
    from caching.early_read import EarlyRead

    key = names.article_key(5)
    with cache_settings(LEASE_WAIT=5.0, LEASE_TTL=30.0):
        face = fetcher.current()
        ahead = EarlyRead.start(face, key)  # the key is absent: this read holds its lease now
        assert ahead is not None and ahead.raw is None and not ahead.unavailable
        leader_result, leader_started = [], threading.Event()

        def leader():
            leader_started.set()
            try:
                leader_result.append(caching.fetch(key, lambda: "loaded", kind="article"))
            except caching.LeaseTimeout as exc:
                leader_result.append(exc)

        thread = threading.Thread(target=leader)
        thread.start()
        assert leader_started.wait(5)
        # The leader is registered in flight before it reads (and then polls for our lease).
        for _ in range(500):
            if key in face.inflight:
                break
            time.sleep(0.002)
        assert key in face.inflight
        assert EarlyRead.start(face, key) is None  # a second read ahead now joins the flight instead
        # Nothing arriving on the subscription (the first PING's answer of a new subscriber): a
        # caller does not join a load while a message is unapplied (FetchFace.joinable).
        for _ in range(1000):
            if not face.l1.unapplied():
                break
            time.sleep(0.002)
        follower = caching.fetch(key, lambda: "mine", kind="article", early_read=ahead)
        thread.join(10)
    assert not isinstance(leader_result[0], caching.LeaseTimeout), "the leader waited on the follower's lease"
    assert leader_result[0].value == follower.value == "loaded"
    assert ahead.used


WRITER = """
import django
django.setup()
from caching.invalidation import on_invalidate
on_invalidate.clear()  # the app tiers only, as in the test process
import caching
caching.invalidate_tags([{tag!r}])
"""


def test_a_thread_does_not_join_a_load_while_an_invalidation_waits_unapplied():
    """Another process's write returned while this process's subscriber sat on its message
    (a thread the OS did not schedule: the writer's wait for our acknowledgement, BROADCAST_WAIT,
    timed out). A thread that calls fetch after that must not take the answer of a load whose L2
    read came before the write: L1.get() does not answer from L1 while a message is unapplied,
    and the single-flight does not let the caller join an older load either."""
    from caching import engine

    key, tag = names.article_key(6), names.article_tag(6)
    loading, finish = threading.Event(), threading.Event()
    results = {}

    def old_load():  # its L2 read (a miss) came before the write
        loading.set()
        assert finish.wait(30)
        return "old"

    def run(name, loader):
        results[name] = caching.fetch(key, loader, kind="article", tags=[tag]).value

    leader = threading.Thread(target=run, args=("leader", old_load))
    leader.start()
    assert loading.wait(10)
    sub = engine.default().subscriber
    apply, release = sub._apply, threading.Event()

    def stalled(data):  # the next message read sits here until released
        release.wait(30)
        sub._apply = apply
        apply(data)

    sub._apply = stalled
    follower = None
    try:
        writer = subprocess.run([sys.executable, "-c", WRITER.format(tag=tag)], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert writer.returncode == 0, writer.stderr[-2000:]
        # The write has returned; its message reached this process and is not applied.
        assert sub.unapplied()
        follower = threading.Thread(target=run, args=("follower", lambda: "new"))
        follower.start()
        time.sleep(0.05)  # the follower is in fetch (joined or polling the leader's lease)
        finish.set()  # the leader's fill is refused (the tag was invalidated after its read)
        follower.join(30)
    finally:
        finish.set()
        release.set()
        leader.join(30)
        if follower is not None:
            follower.join(30)
    assert results == {"leader": "old", "follower": "new"}, results
