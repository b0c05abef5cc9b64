"""Issue 14, mechanism 6: the invalidation sequence going backwards without a reconnect (Redis
reloaded from an older snapshot in place: `DEBUG RELOAD NOSAVE`; the same happens when a lagging
replica is promoted) must not make any process's L1 skip later invalidations.

Two processes use the Django cache API (caching.backends.TieredCache, the same tiers as the app)
on a private redis-server: Q writes, P reads. Deterministic: every step waits for what P reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.freshness.conftest import PrivateRedis
from tests.support import REPO, wait_until

pytestmark = [pytest.mark.slow]

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
