"""/metrics under gunicorn with two workers: each worker writes its own prometheus-client files
and /metrics sums them (PROMETHEUS_MULTIPROC_DIR, hooks in deploy/gunicorn.conf.py)."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PREFIX = "resp.api-article"  # the key prefix of /api/articles/<id>/ responses


def samples(text: str, name: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def cache_lookups_by_pid(metrics_dir) -> dict[int, float]:
    """newsite_cache_requests_total of PREFIX, per worker pid (one counter file per pid)."""
    by_pid = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(re.match(r"counter_(\d+)\.db", path.name).group(1))
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):
            for s in family.samples:
                if s.name == "newsite_cache_requests_total" and s.labels["prefix"] == PREFIX:
                    total += s.value
        if total:
            by_pid[pid] = total
    return by_pid


def test_metrics_sum_both_workers(gunicorn_two_workers):
    server = gunicorn_two_workers
    assert not (server.metrics_dir / "counter_999999.db").exists(), "on_starting must empty the directory"

    # Distinct ids that do not exist: every request is one L1 miss and one L2 miss (a cached 404
    # is filled), so the expected counts are exact whatever worker serves which request.
    ids = iter(range(900_001, 901_000))
    sent = 0
    session_less_get = lambda i: requests.get(f"{server.url}/api/articles/{i}/", timeout=10)  # noqa: E731
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(10):
            batch = [next(ids) for _ in range(24)]
            statuses = {r.status_code for r in pool.map(session_less_get, batch)}
            assert statuses == {404}
            sent += len(batch)
            if len(cache_lookups_by_pid(server.metrics_dir)) >= 2:
                break
    by_pid = cache_lookups_by_pid(server.metrics_dir)
    assert len(by_pid) == 2, f"both workers should have served requests: {by_pid}"

    response = requests.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    text = response.text
    lookups = {
        (s.labels["tier"], s.labels["result"]): s.value
        for s in samples(text, "newsite_cache_requests_total")
        if s.labels["prefix"] == PREFIX
    }
    assert lookups[("l1", "miss")] == sent
    assert lookups[("l2", "miss")] == sent
    assert sum(lookups.values()) == sum(by_pid.values()) == 2 * sent
    loads = [s.value for s in samples(text, "newsite_cache_loads_total") if s.labels["prefix"] == PREFIX]
    assert loads == [sent]

    # Request latency by endpoint: every request above, from both workers.
    latency = [
        s.value for s in samples(text, "newsite_http_request_duration_seconds_count")
        if s.labels["endpoint"] == "api-article" and s.labels["method"] == "GET"
    ]
    assert latency == [sent]
    for metric in ("newsite_cache_invalidations_total", "newsite_breaker_open", "newsite_outbox_pending"):
        assert metric in text

    # child_exit -> mark_process_dead: a worker that exits loses its live gauges (the breaker's
    # livemax file), while its counters stay in the sums.
    victim = min(by_pid)
    live_file = server.metrics_dir / f"gauge_livemax_{victim}.db"
    assert live_file.exists()
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while live_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not live_file.exists(), "child_exit should mark the worker dead"
    text = requests.get(server.url + "/metrics", timeout=10).text
    after = sum(s.value for s in samples(text, "newsite_cache_requests_total") if s.labels["prefix"] == PREFIX)
    assert after == 2 * sent
