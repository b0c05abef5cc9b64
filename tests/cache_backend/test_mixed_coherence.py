"""Coherence across sync and async processes: one process writes a key 300 times (aset, or set),
two processes read it with get() and two with aget() (8 tasks each) while it writes; every read
that started more than mixed_worker.GRACE (0.5 s) after a write returned sees that write or a
later one - from L1 as much as from Redis (the readers' L1 hits are counted, so the test shows L1
was in play). TieredCache's writes do not wait for the other processes' L1s (README): the
bound is the broadcast's, milliseconds, with CI's load as the margin.

Workers: tests/cache_backend/mixed_worker.py, separate Python processes configured like
another project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cache_backend.conftest import tiered_params

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = 300


def _start(role: str, key: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cache_backend.mixed_worker", json.dumps(tiered_params()), role, key,
         str(VERSIONS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["write-async", "write-sync"])
def test_no_reader_sees_a_write_older_than_the_last_returned_one(writer):
    key = f"mixed:{writer}"
    readers = ["read-sync", "read-sync", "read-async", "read-async"]
    procs = [_start(role, key) for role in readers] + [_start(writer, key)]
    try:
        for proc in procs:
            assert json.loads(proc.stdout.readline())["ready"], "a worker could not subscribe"
        for proc in procs:  # readers first: they are reading before the first write
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            line = proc.stdout.readline()
            assert line, "a worker died"
            reports.append(json.loads(line))
            assert proc.wait(30) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)

    for report in reports[:-1]:
        assert report["stale"] == [], f"{report['role']} read older than a write that returned > GRACE before (returned, read)"
        assert report["reads"] > 50, report
    by_role = {role: sum(r["l1_hits"] for r in reports if r["role"] == role) for role in ("read-sync", "read-async")}
    assert all(hits > 0 for hits in by_role.values()), f"L1 never answered a reader: {by_role}"
