"""The multi-host harness, short (issue 27): bench/hosts.py's cluster in network namespaces (3 app
hosts x 2 workers, 2 Varnish edges, a Celery host, Redis, a PostgreSQL primary + asynchronous
standby) and bench/scenarios/hosts.py's sampler with one of each fault, a few seconds each: app1
cut off from Redis while writes go through app2 and app3, edge1 restarted, the standby stopped,
the Celery host killed.

Asserted (what holds today): no answer >= 500 anywhere but 503 (the product's fast answer when
a key is busy elsewhere or the database is gone: counted and printed, as the benchmark reports
them: a few appear while the standby is stopped), no tier without an answer but the restarting
edge; no app read that began after a write returned shows an older version, on any
host but the partitioned one while it is cut off; every edit shown everywhere 2 s after its
write (or after the repair of the fault it was written in); every outbox row of the run
delivered; every tier fresh at the end. The partitioned host's stale reads are printed, not
asserted: today its L1 is trusted for up to L1_TTL (30 s) while it cannot hear invalidations
(issue 27, branch issue27-partition)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from bench import netns
from bench.hosts import APPS, Cluster
from bench.scenarios.hosts import RESTARTED_EDGE, Plan, sample
from bench.stack import ROOT

pytestmark = pytest.mark.slow

PLAN = Plan(baseline=2.0, fault=2.0, recovery=2.5, articles=2, readers_per_app=1, readers_per_edge=1,
            edit_interval=0.2, drain_timeout=40.0)


@pytest.fixture
def cluster():
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    cluster = Cluster.start(articles=20)
    try:
        yield cluster
    finally:
        cluster.close()


def test_every_fault_across_hosts_loses_nothing_and_heals(cluster):
    result = sample(cluster, PLAN, say=print)
    partition = result["partition"]
    print(f"\n[hosts] {result['app_reads']} app reads, {result['app_stale']} stale; {result['edge_reads']} edge reads, "
          f"{result['edge_stale']} stale; writes p50 {result['writes']['p50_ms']:.0f} ms p99 "
          f"{result['writes']['p99_ms']:.0f} ms; partitioned {partition['host']}: {partition['stale']} of "
          f"{partition['reads']} reads stale, {partition['older_than_bound']} older than {partition['bound_s']:g} s "
          f"(worst {partition['lag_max']}); outbox {result['outbox']}")
    print(json.dumps(result["phases"], default=str))
    assert result["app_reads"] > 100 and result["edge_reads"] > 100 and result["writes"]["count"] > 20

    busy = {}
    for phase, figures in result["phases"].items():
        for key, n in figures["no_version"].items():
            tier, status = key.split(":")
            if status == "503":  # the product's fast busy/unavailable answer: counted, reported
                busy[f"{phase} {tier}"] = n
                continue
            assert int(status) < 500, (phase, key, n)
            planned = status == "0" and phase == "edge" and tier == RESTARTED_EDGE
            assert planned or int(status) != 0, (phase, key, n)
    print(f"[hosts] 503s: {busy or 'none'}")
    # An edit a host refuses is tried on the next one (every edit of the run was made: the
    # writer raises otherwise). A refusal is allowed only as the product's planned fast answer, a
    # 503 with its JSON error while the standby is stopped: the process-wide database breaker
    # cannot tell a replica's lost connection from the primary's (newsite/db_breaker.py), so a
    # host whose replica reads failed refuses writes too until its probe closes the breaker.
    refused = [f for f in result["write_failures"] if not re.search(r': 503 \{"error": "unavailable"', f["what"])]
    assert refused == [], refused
    print(f"[hosts] edits refused with a 503 and made on the next host: {len(result['write_failures'])}")
    # The message names each stale app tier's phases and its worst reads (lag, X-Cache, worker):
    # what CI prints is cut, and a run's stdout is not kept.
    assert result["app_stale"] == 0, json.dumps([(tier, t["stale_by_phase"], t["worst"][:3])  # a str: shown uncut
                                                 for tier, t in result["tiers"].items() if t["stale"] and tier in APPS])
    assert result["stale_2s_after_write_or_repair"] == []
    assert result["outbox"]["rows"] > 0 and result["outbox"]["lost"] == 0, result["outbox"]
    assert result["final"]["stale"] == [], result["final"]
    assert set(result["writes"]["by_host"]) == set(APPS)


CRASHING_RUN = """
import subprocess, sys, time
from bench.netns import Network
net = Network.create(["x", "y"])
child = subprocess.Popen(net.wrap("x", ["sleep", "120"]), start_new_session=True)
print(net.slot, child.pid, flush=True)
time.sleep(120)
"""


def test_a_crashed_runs_namespaces_and_processes_are_removed_by_the_next_run():
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    crashed = subprocess.Popen([sys.executable, "-c", CRASHING_RUN], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        slot, child = (int(x) for x in crashed.stdout.readline().split())
    finally:
        os.kill(crashed.pid, signal.SIGKILL)  # no teardown runs
        crashed.wait(10)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nsh{slot}-x" in names and os.path.exists(f"/proc/{child}")
    with netns.Network.create(["z"]) as net:
        assert {f"namespace nsh{slot}-x", f"namespace nsh{slot}-y", f"link nsh{slot}br"} <= set(net.leftovers)
        assert not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z"
        with pytest.raises(ValueError):
            net.check_url("http://127.0.0.1:6379/")
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nsh{slot}-" not in names and f"nsh{net.slot}-" not in names
