"""In-process cache statistics for /health/cache/ (per process: each gunicorn worker answers
for itself; Prometheus has the cluster-wide view)."""

from __future__ import annotations

import os

from caching import conf, fetcher, metrics


def snapshot() -> dict:
    """JSON-ready dict: hit ratio per tier and per key prefix, L1 size and bytes, breaker state,
    subscription state. Cheap (no Redis call)."""
    metrics.flush_all()
    cfg = conf.get()
    face = fetcher.current()
    engine = face.engine
    prefixes = metrics.all_prefix_stats()
    l1_hit = sum(s.l1_hit for s in prefixes.values())
    l1_miss = sum(s.l1_miss for s in prefixes.values())
    l2_hit = sum(s.l2_hit + s.l2_stale for s in prefixes.values())
    l2_total = l2_hit + sum(s.l2_miss for s in prefixes.values())
    engine_snapshot = engine.snapshot()
    return {
        "pid": os.getpid(),
        "enabled": cfg.enabled,
        "l1_enabled": cfg.l1_enabled,
        "tiers": {
            "l1": {"hit": l1_hit, "miss": l1_miss, "hit_ratio": metrics.hit_ratio(l1_hit, l1_hit + l1_miss)},
            "l2": {"hit": l2_hit, "lookups": l2_total, "hit_ratio": metrics.hit_ratio(l2_hit, l2_total)},
            "loads": sum(s.loads for s in prefixes.values()),
        },
        "prefixes": {name: s.as_dict() for name, s in sorted(prefixes.items())},
        "l1": engine_snapshot["l1"],
        "subscription": engine_snapshot["subscription"],
        "breaker": {"l2": engine_snapshot["breaker"]},
        "pending_invalidations": len(face.invalidator.pending_tags),
    }
