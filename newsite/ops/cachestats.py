"""What /health/cache/ and the admin Cache page show, gathered from caching/, cdn/ and articles/.

- hit ratios (this process since start and over the last 1/5/15 minutes, all processes since
  start): newsite.ops.hitratios.
- L1, the L2 breaker, the subscription, pending invalidations: caching.stats.snapshot() (this
  process); the database breaker: newsite.db_breaker.
- outbox backlog: one COUNT and one MIN over the partial index of pending rows.
- last warm_cache run: articles.warm.last_run() when that module exists, else "never".
- the freshness canary (newsite.ops.canary), the WSGI front (newsite.front), the invalidation lag
  histograms (newsite_cache_invalidation_lag_seconds).
"""

from __future__ import annotations

import time

from django.db import Error as DatabaseError

from caching import stats as cache_stats
from newsite import front
from newsite.db_breaker import database_breaker_snapshot, database_known_down
from newsite.ops import canary
from newsite.ops.hitratios import WINDOWS, cluster_since_start, process_since_start, window
from newsite.ops.metrics import metrics_registry


def outbox_backlog() -> dict:
    """Pending purge rows (count, age of the oldest in seconds) and dead rows, from
    cdn.outbox.outbox_backlog() (one aggregate query; also refreshes newsite_outbox_pending)."""
    from cdn.outbox import outbox_backlog as cdn_outbox_backlog

    if database_known_down():
        return {"error": "database unavailable (breaker open)"}
    try:
        backlog = cdn_outbox_backlog()
    except DatabaseError as exc:
        return {"error": f"{type(exc).__name__}: {exc}".strip()[:200]}
    return {
        "pending": backlog["pending"],
        "oldest_pending_age_seconds": backlog["oldest_pending_seconds"],
        "dead": backlog["dead"],
    }


def breakers(snapshot_breakers: dict) -> dict:
    """The L2 breaker (caching.stats) plus the database breaker of newsite.db_breaker."""
    return {**snapshot_breakers, "db": database_breaker_snapshot()}


def recent_purges(limit: int = 20) -> list[dict]:
    """The latest outbox rows: what was invalidated recently, cluster-wide, and whether the CDN
    has it (the freshness canary's own rows left out). Empty when the database is unreachable."""
    from cdn.models import PurgeOutbox

    if database_known_down():
        return []
    try:
        rows = list(
            # The canary's own purges (4 a minute) would push every real invalidation off the list.
            PurgeOutbox.objects.exclude(tags=[canary.CANARY_TAG]).order_by("-id").values(
                "id", "delivered_to", "tags", "urls", "status", "attempts", "created_at", "delivered_at", "last_error"
            )[:limit]
        )
    except DatabaseError:
        return []
    return rows


def last_warm_cache() -> dict | str:
    """The report of the last warm_cache run, or "never" (also when it cannot be read)."""
    try:
        from articles.warm import last_run
    except ImportError:
        return "never"
    report = last_run()
    if not report:
        return "never"
    finished = report.get("finished_at")
    if finished:
        report = {**report, "age_seconds": round(time.time() - float(finished), 1)}
    return report


def canary_status() -> dict | str:
    """newsite.ops.canary.status(): "never ran", or the canary's age per tier and what fails;
    {"error": ...} when the database is unreachable (/health/ reports it; no 503 here for it)."""
    if database_known_down():
        return {"error": "database unavailable (breaker open)", "failed": []}
    try:
        return canary.status()
    except DatabaseError as exc:
        return {"error": f"{type(exc).__name__}: {exc}".strip()[:200], "failed": []}


def report() -> dict:
    """The /health/cache/ document (see docs/observability.md)."""
    snap = cache_stats.snapshot()
    windows = {f"last_{int(s // 60)}m": window(s) for s in WINDOWS}
    return {
        "pid": snap["pid"],
        "enabled": snap["enabled"],
        "l1_enabled": snap["l1_enabled"],
        "hit_ratio": {
            "process_since_start": process_since_start(),
            **{f"process_{name}": data for name, data in windows.items()},
            "all_processes_since_start": cluster_since_start(),
        },
        "loads": snap["tiers"]["loads"],
        "l1": snap["l1"],
        "breaker": breakers(snap["breaker"]),
        "subscription": snap["subscription"],
        "pending_invalidations": snap["pending_invalidations"],
        "outbox": outbox_backlog(),
        "warm_cache": last_warm_cache(),
        "canary": canary_status(),
        "wsgi_front": front_status(),
    }


def front_status() -> dict:
    """This process's WSGI front (newsite/front.py): on with its counts, or off and why."""
    return front.status()


def invalidation_lag() -> dict[str, dict]:
    """newsite_cache_invalidation_lag_seconds per stage (l2, l1, cdn) since start, from every
    process in multiprocess mode (else this one): {"count", "p50", "p99"} with each quantile the
    upper bound of its bucket (None: no observation; inf: above the largest bucket)."""
    buckets: dict[str, dict[float, float]] = {}
    for family in metrics_registry().collect():
        if family.name != "newsite_cache_invalidation_lag_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket"):
                stage = buckets.setdefault(s.labels.get("stage", "?"), {})
                le = float(s.labels["le"])
                stage[le] = stage.get(le, 0.0) + s.value
    out = {}
    for stage in ("l2", "l1", "cdn"):
        cumulative = sorted(buckets.get(stage, {}).items())
        count = cumulative[-1][1] if cumulative else 0.0
        out[stage] = {"count": int(count), **{f"p{int(q * 100)}": _quantile(cumulative, count, q) for q in (0.5, 0.99)}}
    return out


def _quantile(cumulative: list[tuple[float, float]], count: float, q: float) -> float | None:
    if not count:
        return None
    for le, cum in cumulative:
        if cum >= q * count:
            return le
    return float("inf")
