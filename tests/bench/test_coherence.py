"""Scenario `coherence` (the stale-read sampler as a benchmark): its compact read log and report
section (pure), and one tiny real run of `python -m bench --scenario coherence --smoke`.

The smoke run asserts only that the scenario runs end to end and reports per tier; whether any
tier served a stale version is the freshness tests' question (tests/freshness), not this one's.
"""

import pickle
import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from bench import report, sampler
from bench.context import Context
from bench.stack import ROOT, Stack
from tests.support import database_url, require_postgresql


def test_read_log_gives_back_the_reads_it_recorded_and_pickles():
    log = sampler.ReadLog("l1l2", [11, 12])
    log.add(0, 1.0, 1.001, 3, 200, "HIT-L1", None, "0", "4242")
    log.add(1, 1.1, 1.102, None, 503, None, "MISS", None, None)
    back = pickle.loads(pickle.dumps(log))
    reads = list(back.reads())
    assert reads == [
        sampler.Read("l1l2", 11, 1.0, 1.001, 3, 200, "HIT-L1", None, "0", "4242"),
        sampler.Read("l1l2", 12, 1.1, 1.102, None, 503, None, "MISS", None, None),
    ]
    assert back.workers() == {4242: 1, 0: 1}
    back.add(0, 1.2, 1.3, 4, 200, "HIT-L1")  # the label table still works after unpickling
    assert list(back.reads())[-1].x_cache == "HIT-L1" and back.labels.count("HIT-L1") == 1


def test_writer_records_the_return_time_and_kind_an_edit_reports():
    import threading

    stop = threading.Event()
    calls = []

    def patch(article_id, title):
        calls.append(article_id)
        if len(calls) >= 2:
            stop.set()
        return sampler.Edit(len(calls) + 1, 123.0, "admin") if len(calls) == 1 else len(calls) + 1

    writer = sampler.Writer([7], patch, stop, interval=0)
    writer.run()
    assert writer.error is None
    assert [(w.version, w.returned, w.kind) for w in writer.writes][0] == (2, 123.0, "admin")
    assert writer.writes[1].kind == "api" and writer.writes[1].returned >= writer.writes[1].started


def _tier(reads, stale=0, **extra):
    return {"reads": reads, "errors": 0, "reads_per_s": reads / 10, "processes": extra.pop("processes", 1),
            "x_cache": {"HIT-L1": reads}, "stale": stale, "lag_p50": None, "lag_p99": None, "window_p50": 0.0,
            "window_p99": extra.pop("window_p99", 0.0), "stale_after_1s": extra.pop("stale_after_1s", 0),
            "stale_edits": 0, "stale_reads": extra.pop("stale_reads", []), **extra}


def test_report_has_the_coherence_section_with_per_tier_rows_and_targets(tmp_path):
    opts = SimpleNamespace(out_dir=str(tmp_path), scenario_name="coherence", server="gunicorn-sync", workers=2,
                           threads=4, connections=16, warmup=1, zipf_warmup=2, duration=2, cold_start=True,
                           rounds=1, redis="private", redis_url="", argv_text="--scenario coherence",
                           workloads=("hot",), modes=("floor",))
    ctx = Context(opts=opts, stack=Stack(workdir=tmp_path), env={}, wrk="wrk")
    stale = {"tier": "edge", "article": 5, "version": 2, "expected": 3, "lag_ms": 42.0, "x_cache": "HIT-L2",
             "edge": "HIT", "age": "0", "worker": "99", "status": 200}
    ctx.coherence = {
        "status": "ok", "duration": 10.0, "articles": [5, 6, 7], "readers": {"l1l2": 6, "l2": 2, "edge": 2},
        "workers": 3, "server": "gunicorn-sync", "edit_interval": 0.2, "purge_check": "the edge showed it",
        "writes": {"api": {"count": 3, "p50": 20.0, "p99": 30.0, "max": 31.0},
                   "admin": {"count": 2, "p50": 40.0, "p99": 50.0, "max": 51.0}},
        "tiers": {"l1l2": _tier(900, processes=3, workers={1: _tier(300), 2: _tier(300), 3: _tier(300)}),
                  "l2": _tier(300), "edge": _tier(2000, stale=1, window_p99=0.042, processes=None,
                                                  stale_reads=[stale])},
        "outbox": {"done": 5}, "delivery": {"p50": 10.0, "p99": 20.0, "max": 21.0},
    }
    text = report.write(ctx, [])[0].read_text()
    assert "## Coherence: stale reads while a writer edits (issue 14)" in text
    assert "| L1+L2 (every worker) | 3 | 900 |" in text and "| L2 only | 1 | 300 |" in text
    assert text.count("L1+L2 worker pid") == 3 and "| edge (Varnish) | – | 2,000 |" in text
    assert "| api | 3 | 20.0 | 30.0 | 31.0 |" in text and "| admin | 2 |" in text
    assert "0 stale in 1,200 reads across 4 processes | **no** |" in text  # < 1,000,000 reads
    assert "| edge: stale window p99 <= 100 ms | 42.0 ms | yes |" in text
    assert "| edge | 5 | 2 | 3 | 42.0 | HIT-L2 | HIT | 0 | 99 |" in text


# --- One tiny real run --------------------------------------------------------------------------


@pytest.fixture
def bench_database():
    """A database of this test's own for the benchmark to migrate and seed (dropped at the end)."""
    require_postgresql()
    from django.db import connection

    settings = {**connection.settings_dict, "NAME": f"{connection.settings_dict['NAME']}_bench_coh"[:60]}
    admin_url = database_url({**settings, "NAME": "postgres"})
    name = sql.Identifier(settings["NAME"])
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    yield database_url(settings)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def test_coherence_smoke_run_reports_every_tier(bench_database, tmp_path):
    for binary in ("redis-server", "varnishd"):
        if not shutil.which(binary):
            pytest.skip(f"{binary} not installed")
    from django.conf import settings

    prefix = f"{settings.CACHES['default'].get('KEY_PREFIX') or 'newsite'}-benchcoh"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "coherence", "--smoke", "--coherence-duration", "3",
         "--articles", "60", "--database-url", bench_database, "--key-prefix", prefix, "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    md = tmp_path / f"{time.strftime('%Y-%m-%d', time.gmtime())}-coherence-smoke.md"
    assert md.exists(), done.stdout[-3000:]
    text = md.read_text()
    assert "## Coherence: stale reads while a writer edits (issue 14)" in text, text[-3000:]
    for label in ("L1+L2 (every worker)", "L2 only", "edge (Varnish)"):
        row = re.search(rf"^\| {re.escape(label)} \| [^|]* \| ([\d,]+) \|", text, re.M)
        assert row and int(row.group(1).replace(",", "")) > 0, f"no reads through {label}:\n{text[-3000:]}"
    assert "L1+L2 worker pid" in text
    assert re.search(r"^\| api \| [1-9]", text, re.M) and re.search(r"^\| admin \| [1-9]", text, re.M), text[-3000:]
    assert md.name in (tmp_path / "LATEST.md").read_text()
