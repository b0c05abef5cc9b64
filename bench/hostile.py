"""The `junk` scenario's last phase (issue 28.3): the database CPU one hostile client can cause.

One client (one address: the server under test charges 127.0.0.1, THROTTLE_EXEMPT empty) sends,
on CONNECTIONS keep-alive connections for SECONDS, requests no tier can answer and each as dear
as it can make them: searches matching every article ("-zzz<n>", unique, pages up to 50), broad
OR searches, and deep feed pages (random pages up to 2,500: an OFFSET scan each). The figure:
CPU seconds of the PostgreSQL backends connected to the bench database (/proc/<pid>/stat,
utime + stime, the backends seen before and after) per wall second, beside the status codes.
BENCH_HOSTILE_SECONDS overrides the duration (20 s; 5 s with --smoke).
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
from collections import Counter

from bench.context import log

SECONDS, SMOKE_SECONDS = 20.0, 5.0
CONNECTIONS = 8
WORDS = ("market", "city", "world", "school", "border", "council", "minister", "trade")
_TICKS = os.sysconf("SC_CLK_TCK")


def _backend_pids(database_url: str) -> set[int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(pid) for (pid,) in rows}


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def hostile_path(rnd: random.Random, n: int) -> str:
    pick = rnd.random()
    if pick < 0.4:
        return f"/api/search/?q=-zzz{n}&page={rnd.randint(1, 50)}"
    if pick < 0.6:
        return "/api/search/?q=" + "+or+".join(rnd.sample(WORDS, 4)) + f"+or+w{n}"
    return f"/api/articles/?page={rnd.randint(1, 2500)}"


def measure(base_url: str, database_url: str, *, smoke: bool) -> dict:
    seconds = float(os.environ.get("BENCH_HOSTILE_SECONDS") or (SMOKE_SECONDS if smoke else SECONDS))
    host, port = base_url.removeprefix("http://").split(":")
    statuses: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed: int):
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        n = seed * 1_000_000
        while time.monotonic() < deadline:
            n += 1
            try:
                conn.request("GET", hostile_path(rnd, n))
                response = conn.getresponse()
                response.read()
                code = str(response.status)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                code = "error"
            with lock:
                statuses[code] += 1
        conn.close()

    before_pids = _backend_pids(database_url)
    before = {pid: _cpu_seconds(pid) for pid in before_pids}
    log(f"junk: one hostile client, {CONNECTIONS} connections, {seconds:g} s of dear requests")
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i + 1,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    wall = time.monotonic() - started
    cpu = 0.0
    for pid in before_pids | _backend_pids(database_url):
        now = _cpu_seconds(pid)
        if now is not None:
            cpu += now - (before.get(pid) or 0.0)
    sent = sum(statuses.values())
    out = {"seconds": wall, "requests": sent, "req_s": sent / wall if wall else 0.0,
           "statuses": dict(statuses), "db_cpu_seconds": cpu, "db_cpu_per_second": cpu / wall if wall else 0.0}
    log(f"junk: hostile client: {sent:,} requests, statuses {dict(statuses)}, "
        f"database CPU {out['db_cpu_per_second']:.2f} s per second")
    return out
