"""The ops endpoints: /metrics, /health/, /health/cache/. Never cached (Cache-Control: no-store).

/metrics aggregates every process's prometheus-client files when PROMETHEUS_MULTIPROC_DIR is
set (gunicorn workers, Celery workers sharing the directory), else this process's registry.
"""

from __future__ import annotations

import os

from django.db import Error as DatabaseError
from django.http import HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from caching import metrics as cache_metrics
from newsite.db_breaker import database_free, database_known_down
from newsite.ops import cachestats, canary, probes
from newsite.ops.metrics import metrics_registry


def _no_store(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private, max-age=0
    patch_cache_control(response, no_store=True)
    return response


@database_free
@require_safe
def metrics_view(request):
    """Prometheus text format. Pushes this process's batched L1 hits and refreshes
    newsite_outbox_pending (one COUNT) and newsite_freshness_canary_age_seconds (one read of the
    canary row) first, unless the database breaker is open (they keep their last value)."""
    cache_metrics.flush_all()
    if not database_known_down():
        try:
            from cdn.outbox import update_pending_gauge

            update_pending_gauge()
            canary.update_age_gauges()
        except DatabaseError:
            pass  # the gauges keep their last value; /health/ reports the database
    return _no_store(HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST))


@database_free
@require_safe
def health_view(request):
    """200 {"status": "ok", "checks": {...}} or 503 {"status": "fail", "failed": [...], ...}."""
    checks = probes.run_checks()
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks, "pid": os.getpid()}
    return _no_store(JsonResponse(body, status=503 if failed else 200))


@database_free
@require_safe
def health_cache_view(request):
    """JSON: hit ratio per tier and prefix (this process since start and over the last 1/5/15
    minutes; all processes since start), L1 entries and bytes, breaker, outbox, warm_cache, the
    freshness canary. 503 (body "status": "fail", "failed": ["canary:edge", ...]) when a tier's
    canary is older than FRESHNESS_CANARY_MAX_AGE; 200 otherwise (also before the first run)."""
    report = cachestats.report()
    state = report.get("canary")
    failed = [f"canary:{tier}" for tier in state["failed"]] if isinstance(state, dict) else []
    report = {"status": "fail" if failed else "ok", "failed": failed, **report}
    return _no_store(JsonResponse(report, status=503 if failed else 200, json_dumps_params={"indent": 1}))
