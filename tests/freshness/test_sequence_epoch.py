"""Issue 14, mechanism 6: the invalidation sequence going backwards without a reconnect (Redis
reloaded from an older snapshot in place: `DEBUG RELOAD NOSAVE`; the same happens when a lagging
replica is promoted) must not make any process's L1 skip later invalidations.

1. Two processes use the Django cache API (caching.backends.TieredCache, the same tiers as the
   app) on a private redis-server: Q writes, P reads. Every step waits for what P reads.
2. The app stack (editor host + a reader host of one gthread worker, through the proxy): a read
   racing a PATCH (its L2 read done before the invalidation, its reply held by the proxy until the
   reader has applied the broadcast) must not put the old version into L1 - the stale-set guard
   of L1 that a backwards sequence defeats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import make_article
from tests.freshness.conftest import PrivateRedis, get
from tests.support import REPO, wait_until

pytestmark = [pytest.mark.slow]

FRESHNESS_STACK = {"edge": False, "l2only": False, "reader_workers": 1, "reader_threads": 4}

BROADCAST_WAIT = 3.0  # normally a few ms


class CacheClient:
    def __init__(self, params: dict):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.freshness.cache_client", json.dumps(params)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env,
        )
        assert json.loads(self.proc.stdout.readline())["ready"]

    def call(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "cache client died"
        return json.loads(line)

    def get(self, key: str):
        return self.call(op="get", key=key)["value"]

    def set(self, key: str, value) -> None:
        self.call(op="set", key=key, value=value)

    def reads(self, key: str, value, timeout: float = BROADCAST_WAIT) -> bool:
        return bool(wait_until(lambda: self.get(key) == value, timeout, 0.005))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def two_processes(tmp_path):
    import shutil

    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    server = PrivateRedis(tmp_path)
    params = {"BACKEND": "caching.backends.TieredCache", "LOCATION": server.url(0),
              "OPTIONS": {"NAMESPACE": "freshness-epoch"}}
    writer = reader = None
    try:
        writer = CacheClient(params)
        reader = CacheClient(params)
        yield server, writer, reader
    finally:
        for client in (writer, reader):
            if client is not None:
                client.close()
        server.stop()


def test_sequence_going_backwards_does_not_make_l1_skip_invalidations(two_processes):
    server, writer, reader = two_processes
    redis = server.client()
    writer.set("headline", "v0")
    assert reader.reads("headline", "v0")
    assert redis.execute_command("SAVE")  # the snapshot: sequence at S
    for n in (1, 2, 3):  # the sequence moves to S+3 and the reader has seen it
        writer.set("headline", f"v{n}")
        assert reader.reads("headline", f"v{n}"), f"the reader never saw v{n} (before any reload)"
    # Redis goes back to the snapshot in place: same connections, subscriptions kept, sequence S
    assert redis.execute_command("DEBUG", "RELOAD", "NOSAVE")
    writer.set("headline", "v4")
    stale = {}
    for name, client in (("the writing process", writer), ("the other process", reader)):
        if not client.reads("headline", "v4"):
            stale[name] = client.get("headline")
    assert not stale, (
        "after Redis went back to an older snapshot (sequence lower, no reconnect), L1 skipped the "
        f"invalidation of a later write of 'v4': {BROADCAST_WAIT} s after it returned "
        + ", ".join(f"{name} still reads {value!r}" for name, value in stale.items()))


def detail(article_id: int) -> str:
    return f"/api/articles/{article_id}/"


def in_l1_of_reader(stack, path: str, title: str) -> bool:
    seen = [get(stack.readers.url + path) for _ in range(2)]
    return seen[-1].x_cache == "HIT-L1" and seen[-1].title == title


@pytest.mark.django_db(transaction=True)
def test_sequence_going_backwards_does_not_let_a_racing_fill_into_l1(stack, editor):
    other = make_article(title="other v1")
    article = make_article(title="v1 epoch race")
    redis = stack.redis.client()
    editor.patch(other.id, title="other v2")  # the sequence exists (S) before the snapshot
    assert redis.execute_command("SAVE")
    assert wait_until(lambda: in_l1_of_reader(stack, detail(other.id), "other v2"), 10)
    for n in (3, 4, 5):  # the sequence moves past S, and the reader applies each broadcast
        editor.patch(other.id, title=f"other v{n}")
        assert wait_until(lambda n=n: get(stack.readers.url + detail(other.id)).title == f"other v{n}", 5)
    assert redis.execute_command("DEBUG", "RELOAD", "NOSAVE")  # in place: connections stay up

    # The racing read: a key tagged article:{id} in L2 (filled through the editor host), not in
    # the reader's L1; the reader's detail of the same article in its L1, to see the broadcast land.
    gate = 900_000 + article.id
    path = f"/api/freshness/gated/{gate}/{article.id}/"
    assert get(stack.editor.url + path).title == "v1 epoch race"
    assert wait_until(lambda: in_l1_of_reader(stack, detail(article.id), "v1 epoch race"), 10)
    stack.proxy.hold_replies(f"gate={gate}\r\n".encode())
    with ThreadPoolExecutor(max_workers=1) as pool:
        racing = pool.submit(get, stack.readers.url + path)
        try:
            assert stack.proxy.wait_for(lambda p: p.replies_held >= 1, 10), (
                f"the reader's Redis read of {path} was never seen by the proxy (marker gate={gate} not in "
                "any command: has the key format changed?)")
            editor.patch(article.id, title="v2 epoch race")
            applied = wait_until(lambda: get(stack.readers.url + detail(article.id)).title == "v2 epoch race", 5)
            assert applied, "the reader never applied the broadcast of the PATCH"
        finally:
            stack.proxy.release_replies()
        first = racing.result(timeout=30)
    after = [get(stack.readers.url + path) for _ in range(3)]
    stale = [s for s in after if s.title != "v2 epoch race"]
    assert not stale, (
        "after Redis went back to an older snapshot, a read that raced the PATCH (it began before, "
        f"and answered {first.title!r}) put the old version into L1: {len(stale)} of {len(after)} "
        f"later reads show it, e.g. {stale[0]}")
