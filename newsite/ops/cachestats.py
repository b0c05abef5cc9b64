"""What /health/cache/ and the admin Cache page show, gathered from caching/, cdn/ and articles/.

- since start, this process: caching.stats.snapshot() (exact, per process).
- recent windows, this process: deltas between samples of the same counters, taken at most every
  SAMPLE_EVERY seconds by RequestLatencyMiddleware (and by every call here), kept 15 minutes.
- since start, all processes: the prometheus-client multiprocess files (when
  PROMETHEUS_MULTIPROC_DIR is set). L1 hits reach them in batches of up to 64 per prefix and
  process (caching.metrics.L1_HIT_BATCH), so this view may lag by that much per process.
- outbox backlog: one COUNT and one MIN over the partial index of pending rows.
- last warm_cache run: articles.warm.last_run() when that module exists, else "never".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque

from django.db import Error as DatabaseError

from caching import metrics as cache_metrics
from caching import stats as cache_stats
from newsite.db_breaker import database_breaker_snapshot, database_known_down

logger = logging.getLogger(__name__)

SAMPLE_EVERY = 10.0
KEEP_SECONDS = 900.0
WINDOWS = (60, 300, 900)

# (monotonic time, {prefix: (l1_hit, l1_miss, l2_hit, l2_miss, l2_stale)})
_samples: deque = deque(maxlen=int(KEEP_SECONDS // SAMPLE_EVERY) + 2)
_samples.append((time.monotonic(), {}))  # this process's counters start from zero
_last_sample = time.monotonic()
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # caching resets its in-process counters in a forked child: old samples would go negative.
    global _last_sample, _lock
    _samples.clear()
    _lock = threading.Lock()
    _samples.append((time.monotonic(), {}))  # the counters start from zero in the child
    _last_sample = time.monotonic()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _counters() -> dict[str, tuple[int, int, int, int, int]]:
    return {
        name: (s.l1_hit, s.l1_miss, s.l2_hit, s.l2_miss, s.l2_stale)
        for name, s in cache_metrics.all_prefix_stats().items()
    }


def sample(now: float | None = None) -> None:
    """Record the current counters of this process (drops samples older than KEEP_SECONDS)."""
    global _last_sample
    now = time.monotonic() if now is None else now
    with _lock:
        _samples.append((now, _counters()))
        _last_sample = now
        while _samples and now - _samples[0][0] > KEEP_SECONDS + SAMPLE_EVERY:
            _samples.popleft()


def maybe_sample() -> None:
    """Cheap when nothing is due: one clock read and a comparison."""
    if time.monotonic() - _last_sample >= SAMPLE_EVERY:
        sample()


def _ratio(part: int, total: int) -> float | None:
    return round(part / total, 4) if total else None


def summarise(per_prefix: dict[str, tuple]) -> dict:
    """Hit ratio per tier and per prefix from (l1_hit, l1_miss, l2_hit, l2_miss, l2_stale)."""
    prefixes = {}
    sums = [0, 0, 0, 0, 0]
    for name, (l1h, l1m, l2h, l2m, l2s) in sorted(per_prefix.items()):
        if not (l1h or l1m or l2h or l2m or l2s):
            continue
        for i, v in enumerate((l1h, l1m, l2h, l2m, l2s)):
            sums[i] += v
        prefixes[name] = {
            "l1": {"hit": l1h, "miss": l1m, "hit_ratio": _ratio(l1h, l1h + l1m)},
            "l2": {"hit": l2h, "stale": l2s, "miss": l2m, "hit_ratio": _ratio(l2h + l2s, l2h + l2s + l2m)},
        }
    l1h, l1m, l2h, l2m, l2s = sums
    return {
        "tiers": {
            "l1": {"hit": l1h, "miss": l1m, "hit_ratio": _ratio(l1h, l1h + l1m)},
            "l2": {"hit": l2h, "stale": l2s, "miss": l2m, "hit_ratio": _ratio(l2h + l2s, l2h + l2s + l2m)},
        },
        "prefixes": prefixes,
    }


def window(seconds: float, now: float | None = None) -> dict:
    """Hit ratios of this process over the last `seconds`: the counters now minus the newest
    sample at least `seconds` old. A process younger than that (or not sampled that far back)
    reports over what it has; "seconds" says how long the window really is."""
    now = time.monotonic() if now is None else now
    maybe_sample()
    current = _counters()
    with _lock:
        samples = list(_samples)
    base_time, base = samples[0] if samples else (now, current)
    for t, counters in samples:  # oldest first
        if now - t < seconds:
            break
        base_time, base = t, counters
    delta = {}
    for name, values in current.items():
        old = base.get(name, (0, 0, 0, 0, 0))
        delta[name] = tuple(max(0, a - b) for a, b in zip(values, old, strict=True))
    out = summarise(delta)
    out["seconds"] = round(max(0.0, now - base_time), 1)
    return out


def cluster_since_start() -> dict | None:
    """Hit ratios of all processes sharing PROMETHEUS_MULTIPROC_DIR, since the server started;
    None when prometheus-client is not in multiprocess mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path or not os.path.isdir(path):
        return None
    from prometheus_client.multiprocess import MultiProcessCollector

    cache_metrics.flush_all()
    per_prefix: dict[str, list[int]] = {}
    slot = {("l1", "hit"): 0, ("l1", "miss"): 1, ("l2", "hit"): 2, ("l2", "miss"): 3, ("l2", "stale"): 4}
    for family in MultiProcessCollector(None, path=path).collect():
        if family.name != "newsite_cache_requests":
            continue
        for s in family.samples:
            if not s.name.endswith("_total"):
                continue
            index = slot.get((s.labels.get("tier"), s.labels.get("result")))
            if index is not None:
                per_prefix.setdefault(s.labels.get("prefix", "?"), [0] * 5)[index] += int(s.value)
    return summarise({k: tuple(v) for k, v in per_prefix.items()})


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
    from newsite.ops.canary import CANARY_TAG

    if database_known_down():
        return []
    try:
        rows = list(
            # The canary's own purges (4 a minute) would push every real invalidation off the list.
            PurgeOutbox.objects.exclude(tags=[CANARY_TAG]).order_by("-id").values(
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
    from newsite.ops import canary

    if database_known_down():
        return {"error": "database unavailable (breaker open)", "failed": []}
    try:
        return canary.status()
    except DatabaseError as exc:
        return {"error": f"{type(exc).__name__}: {exc}".strip()[:200], "failed": []}


def process_since_start() -> dict:
    """Hit ratios of this process since it started (or forked)."""
    return summarise(_counters())


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
    from newsite import front

    return front.status()


def invalidation_lag() -> dict[str, dict]:
    """newsite_cache_invalidation_lag_seconds per stage (l2, l1, cdn) since start, from every
    process in multiprocess mode (else this one): {"count", "p50", "p99"} with each quantile the
    upper bound of its bucket (None: no observation; inf: above the largest bucket)."""
    from newsite.ops.views import metrics_registry

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
