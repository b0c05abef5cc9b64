"""The hosts scenario's accounting and report (pure: bench/scenarios/hosts.figures on hand-made
read logs, bench/hosts_report on its output); the harness itself runs in tests/deploy/test_hosts.py."""

from types import SimpleNamespace

from bench import hosts_report
from bench.sampler import ReadLog, Write
from bench.scenarios.hosts import Plan, figures

ARTICLE = 7


def log(tier, reads):
    """reads: (started, version or None, status)."""
    out = ReadLog(tier, [ARTICLE])
    for started, version, status in reads:
        out.add(0, started, started + 0.001, version, status, "HIT-L1")
    return out


PHASES = [
    {"name": "baseline", "start": 0.0, "fault_end": 10.0, "end": 10.0},
    {"name": "partition", "start": 10.0, "fault_end": 20.0, "end": 30.0},
    {"name": "celery", "start": 30.0, "fault_end": 40.0, "end": 50.0},
]
WRITES = [Write(ARTICLE, 2, 4.9, 5.0, "api@app2"), Write(ARTICLE, 3, 11.9, 12.0, "admin@app3"),
          Write(ARTICLE, 4, 31.9, 32.0, "api@app1")]


def result():
    logs = [
        log("app1", [(4.0, 1, 200), (6.0, 2, 200), (12.5, 2, 200), (18.0, 2, 200), (25.0, 3, 200)]),
        log("app2", [(6.0, 2, 200), (12.1, 3, 200), (13.0, 2, 200)]),  # 13.0: a stale app read
        log("app3", [(20.0, None, 503)]),
        log("edge1", [(15.0, None, 0), (33.0, 3, 200), (41.0, 3, 200), (43.0, 4, 200)]),
        log("edge2", [(5.05, 1, 200), (35.0, 4, 200)]),
    ]
    return figures(logs, WRITES, PHASES, ended=50.0, plan=Plan(baseline=10, fault=10, recovery=10,
                                                                faults=("partition", "celery")))


def test_the_partitioned_hosts_reads_are_counted_apart_and_against_the_bound():
    r = result()
    part = r["partition"]
    # app1 from the cut (10 s) to 2 s after the heal (22 s): 12.5 and 18.0 saw v2 after v3 returned at 12
    assert (part["reads"], part["stale"]) == (2, 2)
    assert part["older_than_bound"] == 1  # 18.0 began 6 s after the write; 12.5 only 0.5 s after
    assert round(part["lag_max"], 3) == 6.0
    assert r["tiers"]["app1"]["stale"] == 0 and r["tiers"]["app1"]["reads"] == 3  # the others of app1
    assert r["app_stale"] == 1 and r["tiers"]["app2"]["stale_by_phase"] == {"partition": 1}


def test_per_phase_answers_without_a_version_and_stale_edits_after_the_write_or_the_repair():
    r = result()
    assert r["phases"]["partition"]["no_version"] == {"edge1:0": 1, "app3:503": 1}
    assert r["phases"]["baseline"]["stale_edge"] == 1  # edge2 at 5.05 saw v1 after v2 returned at 5.0
    # v3 (12.0): stale on app2 until 13.0 and on the partitioned app1 until 18.0 -> > 2 s anywhere only
    # with app1; v4 (32.0, the worker down until 40): stale on edge1 at 41.0, 9 s after the write but
    # 1 s after the repair
    assert r["phases"]["partition"]["stale_after_2s"] == 1
    assert r["phases"]["partition"]["stale_after_2s_outside_partition"] == 0
    assert r["phases"]["celery"]["stale_after_2s"] == 1
    assert r["stale_2s_after_write_or_repair"] == []
    assert r["writes"]["by_host"] == {"app2": 1, "app3": 1, "app1": 1}
    assert r["writes"]["by_kind"]["api"]["count"] == 2


def test_the_report_states_every_target_row(tmp_path):
    r = result()
    r.update(outbox={"rows": 3, "by_status": {"done": 3}, "waited_s": 0.0, "lost": 0,
                     "delivery_ms": {"p50": 50.0, "p99": 8000.0, "max": 8000.0}},
             final={"reads": 10, "stale": []}, write_failures=[], articles=[ARTICLE],
             readers={"app1": 1}, plan=Plan().__dict__ | {"faults": ["partition", "celery"]}, loadavg=(1.0, 1.0, 1.0))
    opts = SimpleNamespace(argv_text="--scenario hosts", server="granian", hosts_replica_delay=0.5,
                           out_dir=str(tmp_path), scenario_name="hosts")
    md, raw = hosts_report.write(r, opts)
    text = md.read_text()
    for row in ("stale app reads", "stale edge reads", "edits left stale anywhere 2 s", "partitioned host: reads older",
                "5xx other than planned 503s", "outbox rows lost", "write latency p50/p99"):
        assert row in text, row
    assert "| partition | 20 (10) | 7 | 0 | 1 (app3 1) | 1 (edge1 1) | 1 |" in text
    assert raw.exists()
