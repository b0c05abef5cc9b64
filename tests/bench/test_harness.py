"""The benchmark harness's pure parts: workload shape, VCL rewrite, counters, report writer.

The harness itself (servers, wrk, Varnish) is exercised by `make bench`, not by the suite.
"""

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter

from bench import loadgen, report
from bench.context import Context, Result
from bench.probes import cache_results, db_queries
from bench.stack import Stack, Unavailable, point_vcl_backend
from bench.stats import percentile


def test_zipf_exponent_puts_92_percent_of_reads_on_5_percent_of_rows():
    n = 2000
    s = loadgen.zipf_exponent(n)
    weights = [r ** -s for r in range(1, n + 1)]
    assert sum(weights[: n // 20]) / sum(weights) == pytest.approx(0.92, abs=0.002)


def test_ranked_ids_are_a_deterministic_permutation(tmp_path):
    ids = list(range(1, 101))
    first = loadgen.write_ranked_ids(ids, tmp_path / "a.txt").read_text().split()
    second = loadgen.write_ranked_ids(ids, tmp_path / "b.txt").read_text().split()
    assert first == second
    assert sorted(map(int, first)) == ids and list(map(int, first)) != ids


def test_vcl_backend_is_pointed_at_the_bench_server():
    vcl = 'vcl 4.1;\nbackend default {\n    .host = "10.0.0.5";\n    .port = "8000";\n}\nsub vcl_recv {}\n'
    out = point_vcl_backend(vcl, 41234)
    assert '.host = "127.0.0.1";' in out and '.port = "41234";' in out
    assert out.endswith("sub vcl_recv {}\n")
    with pytest.raises(Unavailable):
        point_vcl_backend("vcl 4.1;\n", 1)


def test_counters_are_read_from_the_workers_metric_files(tmp_path, monkeypatch):
    """What a worker writes under PROMETHEUS_MULTIPROC_DIR, the harness reads back from the files."""
    from prometheus_client import values

    from bench.probes import prom_samples

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    values.ValueClass = values.get_value_class()
    try:
        registry = CollectorRegistry()
        queries = Counter("bench_db_queries", "q", registry=registry)
        requests = Counter("newsite_cache_requests", "r", ["tier", "prefix", "result"], registry=registry)
        queries.inc(3)
        requests.labels("l1", "article", "hit").inc(5)
        requests.labels("l1", "article", "miss").inc(1)
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        values.ValueClass = values.get_value_class()
    samples = prom_samples(tmp_path)
    assert db_queries(samples) == 3
    assert cache_results(samples) == {"l1": {"hit": 5, "miss": 1}}


def test_percentile_interpolates():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([5], 99) == 5


def test_report_lists_every_mode_with_ratios_and_na_reasons(tmp_path):
    opts = SimpleNamespace(out_dir=str(tmp_path), scenario_name="unit", server="gunicorn-sync", workers=2,
                           threads=4, connections=16, warmup=1, zipf_warmup=2, duration=2, cold_start=True,
                           rounds=1, redis="private", redis_url="", argv_text="--smoke", cold_clients=256,
                           workloads=("hot",), modes=("floor", "nocache", "l1l2"))
    ctx = Context(opts=opts, stack=Stack(workdir=tmp_path), env={}, wrk="wrk")
    ctx.data = {"articles_article": 10, "published": 9}
    ctx.results = [
        Result("throughput", "hot", "floor", req_s=1000, p50_ms=1, p95_ms=2, p99_ms=4, db_per_req=0, redis_per_req=0),
        Result("throughput", "hot", "nocache", req_s=100, p50_ms=10, p95_ms=20, p99_ms=40, db_per_req=3, redis_per_req=0),
        Result("throughput", "hot", "l1l2", status="n/a: newsite cache not active (no X-Cache header)"),
    ]
    paths = report.write(ctx, ctx.results)
    text = paths[0].read_text()
    assert paths[0].name.endswith("-unit.md") and paths[1].suffix == ".png"
    assert "| no cache | 100 | 0.10x |" in text
    assert "n/a: newsite cache not active" in text
    assert "L1 hit (hot article, L1+L2) >= 0.95x floor | n/a | n/a" in text


def test_report_has_the_warmstart_tables(tmp_path):
    opts = SimpleNamespace(out_dir=str(tmp_path), scenario_name="warm", server="gunicorn-sync", workers=2,
                           threads=4, connections=16, warmup=1, zipf_warmup=2, duration=2, cold_start=True,
                           rounds=1, redis="private", redis_url="", argv_text="--scenario warmstart",
                           workloads=("hot",), modes=("floor",))
    ctx = Context(opts=opts, stack=Stack(workdir=tmp_path), env={}, wrk="wrk")
    slices = [{"slice": 0, "req_s": 100.0, "hit": 0.5, "l1": 0.4, "l2": 0.2, "db_per_req": 0.5, "requests": 100},
              {"slice": 1, "req_s": 200.0, "hit": None, "l1": None, "l2": None, "db_per_req": 0.1, "requests": 200}]
    ctx.warmstart = {"status": "ok", "slice_seconds": 30.0, "phases": {
        "cold": {"status": "ok", "slices": slices, "warm_cache_seconds": None, "hit": 0.75, "db_per_req": 0.2,
                 "req_s": 150.0},
        "warm": {"status": "n/a: warm_cache failed: boom"},
        "all": {"status": "ok", "slices": slices, "hit": 0.9, "db_per_req": 0.01, "req_s": 300.0,
                "rewarm_seconds": 2.0, "warm": {
                    "seconds": 20.0, "articles": {"articles": 47500, "seconds": 18.5}, "memory_before": 1_000_000,
                    "memory_after": 201_000_000, "keys_before": 10, "keys_after": 47_510}},
    }}
    text = report.write(ctx, [])[0].read_text()
    assert "## Warm start (first minute after a deploy)" in text
    assert "| cold | 0.750 | 0.200 | 0.500 | 150 | – | – |" in text
    assert "| warm | n/a: warm_cache failed: boom | | | | | |" in text
    assert ("| all | 0.900 | 0.010 | 0.500 | 300 | 20.0 s (articles 47,500 in 18.5 s); again on the warm Redis "
            "2.0 s | 201.00 MB (+200.00 MB), keys 10 -> 47,510 |") in text
    assert "| start | 30 s | 60 s |" in text and "| cold | 0.500 | – |" in text and "| all | 0.500 | 0.100 |" in text


def test_every_scenario_is_a_module_the_cli_accepts():
    from bench.__main__ import IN_ALL, SCENARIOS, parse
    from bench.scenarios import SCENARIOS as MODULES

    assert SCENARIOS == ("throughput", "coldkey", "freshness", "servers", "warmstart", "coherence", "faults", "junk",
                         "hosts", "l1sizes")
    assert IN_ALL == ("throughput", "coldkey", "freshness", "servers", "warmstart")  # the others: by name
    for name, module in MODULES.items():
        assert callable(module.run)
        assert module.SHARED_SERVERS is None or isinstance(module.SHARED_SERVERS, frozenset)
        opts = parse(["--scenario", name, "--smoke"])
        assert opts.scenarios == (name,) and opts.scenario_name == f"{name}-smoke"
    assert parse([]).scenarios == IN_ALL
    with pytest.raises(SystemExit):
        parse(["--scenario", "nope"])


def test_run_dispatches_the_chosen_scenarios_in_order_on_shared_servers(monkeypatch, tmp_path):
    """bench.run only dispatches: the stack is replaced by a recorder, no server starts."""
    from bench import report, run, session
    from bench.__main__ import parse
    from bench.scenarios import SCENARIOS

    calls = []
    opts = parse(["--scenario", "warmstart,freshness,throughput", "--modes", "l1l2", "--out-dir", str(tmp_path)])
    ctx = Context(opts=opts, stack=Stack(workdir=tmp_path), env={}, wrk="wrk")
    monkeypatch.setattr(session, "setup", lambda o: ctx)
    monkeypatch.setattr(session, "build_workloads", lambda c: calls.append("workloads"))
    monkeypatch.setattr(session, "start_servers", lambda c, modes: calls.append(("servers", set(modes))))
    monkeypatch.setattr(session, "finish", lambda c: calls.append("finish"))
    monkeypatch.setattr(report, "write", lambda c, results: [])
    for name, module in SCENARIOS.items():
        monkeypatch.setattr(module, "run", lambda c, name=name: calls.append(name))
    assert run.run(opts) == 0
    assert calls == ["workloads", ("servers", {"floor", "l1l2", "l2", "varnish"}), "throughput", "freshness",
                     "warmstart", "finish"]


def test_cli_help_runs():
    import subprocess
    import sys

    from bench.stack import ROOT

    for module in ("bench", "bench.backend_calls"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout


def test_bench_modules_import_each_other_one_way():
    """No import circle inside bench/ (function-level imports included)."""
    import ast

    from bench.stack import ROOT

    graph = {}
    for path in (ROOT / "bench").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench"):
                edges.add(node.module)
                edges.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("bench"))
        graph[name] = edges
    graph = {name: {e for e in edges if e in graph and e != name} for name, edges in graph.items()}

    def cycle_from(start, node, seen):
        for nxt in graph[node]:
            if nxt == start:
                return [node, nxt]
            if nxt not in seen:
                seen.add(nxt)
                found = cycle_from(start, nxt, seen)
                if found:
                    return [node, *found]
        return None

    assert [c for name in graph if (c := cycle_from(name, name, set()))] == []


def test_gc_pauses_are_observed_after_the_collection_not_inside_its_callback():
    """The gc callback only appends: observing there re-entered prometheus-client's
    non-reentrant value lock when a collection started while it was held (a deadlocked worker)."""
    from prometheus_client import REGISTRY

    from bench import counters

    def observed():
        return REGISTRY.get_sample_value("bench_gc_pause_seconds_count", {"generation": "2"}) or 0

    before = observed()
    counters._gc_callback("start", {"generation": 2})
    counters._gc_callback("stop", {"generation": 2})
    assert observed() == before and counters._gc_pending
    counters.count_request()
    assert observed() >= before + 1 and not counters._gc_pending
