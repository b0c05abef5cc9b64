"""3. Invalidate in process A -> process B's L1 no longer serves the old value once the broadcast
arrives; kill B's subscription -> B's L1 is cleared (and B resubscribes). A subscriber thread that
is not scheduled in time (it has the message but has not applied it) does not let B answer from
its old L1 entry after A's write returned."""

import multiprocessing
import threading
import time

import pytest

import caching
from caching import engine, keys
from tests.caching import names

KEY = names.article_key(3)
TAG = names.article_tag(3)


def _process_b(conn):
    """Serve commands from the test: ("get", version) -> (value, source); ("stats",) -> dict."""
    while True:
        command = conn.recv()
        if command[0] == "get":
            version = command[1]
            fetched = caching.fetch(KEY, lambda v=version: v, kind="article", tags=[TAG])
            conn.send((fetched.value, fetched.source))
        elif command[0] == "stats":
            eng = engine.default()
            conn.send({"subscribed": eng.subscribed(), "clears": eng.l1.clears, "entries": len(eng.l1)})
        elif command[0] == "wait_subscribed":
            conn.send(engine.default().subscriber.wait_subscribed(10))
        elif command[0] == "stall":
            # Starve the subscriber thread: it reads the next message, then sits on it (as a
            # thread the OS does not schedule would) until "release"; then applies it as usual.
            sub = engine.default().subscriber
            apply, release = sub._apply, threading.Event()

            def stalled(data, apply=apply, release=release):
                release.wait(10)
                apply(data)

            sub._apply = stalled
            _process_b.release = release
            conn.send(True)
        elif command[0] == "release":
            _process_b.release.set()
            conn.send(True)
        elif command[0] == "held_back":
            conn.send(engine.default().l1.held_back)
        else:
            return


def _until(predicate, ask, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        answer = ask()
        if predicate(answer):
            return answer
        assert time.monotonic() < deadline, f"gave up waiting, last answer {answer!r}"
        time.sleep(0.02)


@pytest.fixture
def process_b():
    """A forked process B serving _process_b's commands: yields ask(*command) -> its answer."""
    ctx = multiprocessing.get_context("fork")
    conn, child_conn = ctx.Pipe()
    b = ctx.Process(target=_process_b, args=(child_conn,), daemon=True)
    b.start()

    def ask(*command):
        conn.send(command)
        assert conn.poll(15), "process B does not answer"
        return conn.recv()

    ask.pid = b.pid
    yield ask
    conn.send(("quit",))
    b.join(5)
    if b.is_alive():
        b.kill()


@pytest.mark.slow
def test_invalidation_reaches_other_process_l1_and_lost_subscription_clears_it(process_b):
    ask = process_b
    assert ask("wait_subscribed") is True
    assert ask("get", "v1") == ("v1", caching.MISS)
    assert ask("get", "v1") == ("v1", caching.HIT_L1)

    # Process A (this one) invalidates: B's L1 must stop serving v1 once the message lands.
    caching.invalidate_tags([TAG])
    answer = _until(lambda a: a[0] != "v1", lambda: ask("get", "v2"))
    assert answer == ("v2", caching.MISS)
    assert ask("get", "v2") == ("v2", caching.HIT_L1)

    # Kill B's subscription connection: B clears its L1 and resubscribes.
    clears_before = ask("stats")["clears"]
    redis = engine.redis_client()
    name = keys.subscriber_client_name(engine.default().namespace, ask.pid)
    ids = [c["id"] for c in redis.client_list(_type="pubsub") if c.get("name") == name]
    assert len(ids) == 1
    redis.client_kill_filter(_id=ids[0])
    _until(lambda s: s["clears"] > clears_before and s["subscribed"], lambda: ask("stats"))
    # The entry is gone from L1: served from L2 now, then L1 again.
    assert ask("get", "v3") == ("v2", caching.HIT_L2)
    assert ask("get", "v3") == ("v2", caching.HIT_L1)


@pytest.mark.slow
def test_a_starved_subscriber_does_not_let_an_old_l1_entry_answer(process_b):
    ask = process_b
    assert ask("wait_subscribed") is True
    assert ask("get", "v1") == ("v1", caching.MISS)
    assert ask("get", "v1") == ("v1", caching.HIT_L1)
    assert ask("stall") is True
    # A's write returns after its acknowledgement wait (B cannot acknowledge: stalled).
    caching.invalidate_tags([TAG])
    # B's L1 still holds v1 and the invalidation is not applied, yet B must not answer v1:
    # the message has reached B, so the hit falls through to L2 (invalidated: a fresh load).
    for _ in range(3):
        value, source = ask("get", "v2")
        assert value == "v2", (value, source)
        assert source != caching.HIT_L1
    assert ask("held_back") >= 3
    assert ask("release") is True
    assert _until(lambda a: a == ("v2", caching.HIT_L1), lambda: ask("get", "v3")) == ("v2", caching.HIT_L1)
