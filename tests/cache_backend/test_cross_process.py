"""Coherence across processes: a set/delete/clear in one process is seen by another process's
next get once the broadcast arrived (its L1 copy is dropped), and incr is atomic across
processes. Workers are separate Python processes configured like another project would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.cache_backend.conftest import tiered_params

ROOT = Path(__file__).resolve().parents[2]
BROADCAST_WAIT = 5.0  # seconds; normally a few ms


class Worker:
    def __init__(self, params: dict):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cache_backend.worker", json.dumps(params)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        )

    def ready(self) -> bool:
        return json.loads(self.proc.stdout.readline())["ready"]

    def call(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "worker died"
        return json.loads(line)

    def wait_dropped(self, key: str) -> None:
        """Until the broadcast removed `key` from the worker's L1."""
        deadline = time.monotonic() + BROADCAST_WAIT
        while self.call(op="in_l1", key=key)["in_l1"]:
            assert time.monotonic() < deadline, f"{key} still in the worker's L1 after {BROADCAST_WAIT}s"
            time.sleep(0.005)

    def get_into_l1(self, key: str):
        """get() until the value sits in the worker's L1 (a fill racing the broadcast of the
        write it read is refused, conservatively: the next get fills). Returns the value."""
        deadline = time.monotonic() + BROADCAST_WAIT
        while True:
            reply = self.call(op="get", key=key)
            if reply["in_l1"]:
                return reply["value"]
            assert time.monotonic() < deadline, f"{key} never reached the worker's L1"
            time.sleep(0.005)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call(op="quit")
            except (AssertionError, BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def cache():
    params = tiered_params()
    with override_settings(CACHES={"default": params}):
        yield caches["default"]


@pytest.fixture
def workers():
    started = [Worker(tiered_params()) for _ in range(4)]
    try:
        assert all(w.ready() for w in started), "a worker could not subscribe"
        yield started
    finally:
        for w in started:
            w.stop()


@pytest.mark.slow
def test_set_delete_clear_reach_the_other_processes_l1(cache, workers):
    other = workers[0]
    cache.set("headline", "v1")
    assert other.get_into_l1("headline") == "v1"

    cache.set("headline", "v2")
    other.wait_dropped("headline")
    assert other.call(op="get", key="headline")["value"] == "v2"

    cache.delete("headline")
    other.wait_dropped("headline")
    assert other.call(op="get", key="headline")["value"] is None

    cache.set_many({"headline": "v3", "lead": "l3"})
    assert other.get_into_l1("headline") == "v3"
    assert other.get_into_l1("lead") == "l3"
    cache.clear()
    other.wait_dropped("headline")
    other.wait_dropped("lead")
    assert other.call(op="get", key="headline")["value"] is None
    assert other.call(op="get", key="lead")["value"] is None

    # And the other way round: a write in the worker drops this process's L1 copy.
    cache.set("byline", "b1")
    assert cache.get("byline") == "b1"
    other.call(op="set", key="byline", value="b2")
    deadline = time.monotonic() + BROADCAST_WAIT
    while cache.get("byline") != "b2":
        assert time.monotonic() < deadline, "the worker's set never reached this process's L1"
        time.sleep(0.005)


@pytest.mark.slow
def test_incr_from_four_processes_is_exact(cache, workers):
    cache.set("counter", 0)
    for w in workers:  # every worker holds the counter in L1 before the race
        assert w.get_into_l1("counter") == 0
    for w in workers:
        w.proc.stdin.write(json.dumps({"op": "incr_n", "key": "counter", "n": 1000}) + "\n")
        w.proc.stdin.flush()
    finals = [json.loads(w.proc.stdout.readline())["value"] for w in workers]
    assert max(finals) == 4000
    assert cache.get("counter") == 4000
    for w in workers:
        w.wait_dropped("counter")
        assert w.call(op="get", key="counter")["value"] == 4000
