"""The benchmark harness's pure parts: workload shape, VCL rewrite, counters, report writer.

The harness itself (servers, wrk, Varnish) is exercised by `make bench`, not by the suite.
"""

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter

from bench import loadgen, report
from bench.probes import cache_results, db_queries
from bench.run import Context, Result, percentile
from bench.stack import Stack, Unavailable, point_vcl_backend


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
