"""deploy/grafana/newsite.json and deploy/prometheus/prometheus.yml stay in step with /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
SPEC_METRICS = {
    "newsite_cache_requests_total", "newsite_cache_loads_total", "newsite_cache_load_seconds",
    "newsite_cache_invalidations_total", "newsite_cdn_purges_total", "newsite_outbox_pending",
    "newsite_breaker_open",
}


@pytest.mark.django_db
def test_dashboard_queries_only_metrics_that_exist(client):
    client.get("/api/articles/424242/")  # touch the request and cache metrics once
    exposed = set()
    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        # A labelled metric with no child yet has no sample: count its family's sample names.
        exposed.update(family.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum"))
    assert SPEC_METRICS <= exposed
    dashboard = json.loads((REPO / "deploy" / "grafana" / "newsite.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"newsite_[a-z0-9_]+", e)}
    assert used, "the dashboard has queries"
    assert used <= exposed, f"unknown metrics in the dashboard: {used - exposed}"
    assert {"newsite_http_request_duration_seconds_bucket", "newsite_cache_requests_total"} <= used
    # Freshness telemetry (issue 19): lag by stage, stale served, the canary, Redis errors.
    assert {
        "newsite_cache_invalidation_lag_seconds_bucket", "newsite_cache_stale_served_age_seconds_bucket",
        "newsite_freshness_canary_seconds", "newsite_freshness_canary_age_seconds",
        "newsite_cache_redis_errors_total",
    } <= used
    stages = " ".join(e for e in exprs if "invalidation_lag" in e)
    assert "stage" in stages, "the lag panel splits by stage (l2, l1, cdn)"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_scrapes_metrics_path():
    text = (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert re.search(r"metrics_path: /metrics", text)
    assert "job_name: newsite" in text
