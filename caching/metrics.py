"""Prometheus metrics of the cache (SPEC section 7), and in-process counters.

The CDN's metrics (purges, outbox backlog) are defined in cdn/metrics.py.

prometheus-client picks its multiprocess value class by itself when PROMETHEUS_MULTIPROC_DIR is
set (gunicorn); the /metrics view then aggregates with MultiProcessCollector. Gauges declare how
processes combine. Label children are bound once per key prefix (`PrefixStats`), so the hot path
never does a label lookup.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram

from caching import conf

# "<namespace>_cache_requests_total", ..., "<namespace>_breaker_open" (settings.TIERED_CACHE_METRICS_NAMESPACE).
NAMESPACE = conf.metrics_namespace()
CACHE_REQUESTS = Counter(
    f"{NAMESPACE}_cache_requests_total",
    "Cache lookups by tier (l1, l2), logical key prefix and result (hit, miss, stale).",
    ["tier", "prefix", "result"],
)
CACHE_LOADS = Counter(f"{NAMESPACE}_cache_loads_total", "Loader (source) calls by key prefix.", ["prefix"])
CACHE_LOAD_SECONDS = Histogram(
    f"{NAMESPACE}_cache_load_seconds",
    "Duration of loader calls by key prefix.",
    ["prefix"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CACHE_INVALIDATIONS = Counter(
    f"{NAMESPACE}_cache_invalidations_total",
    "Invalidations by kind: tag (L2, per tag), l1_message (broadcasts applied), l1_flush "
    "(whole L1 cleared), rejected_fill (stale sets refused), failed (Redis unreachable), "
    "ack_timeout (a write stopped waiting for an L1), lease_timeout (busy 503), l1_bad_message, "
    "subscriber_lost, subscriber_stuck, subscriber_restart, l1_distrusted (L1 emptied and no longer "
    "trusted: Redis not heard for L1_TRUST_SECONDS, or the subscription lost).",
    ["kind"],
)
REDIS_ERRORS = Counter(
    f"{NAMESPACE}_cache_redis_errors_total",
    "Redis calls that failed, by tier and kind (connection, timeout, oom, readonly, noperm, script, other);"
    " each was answered from L1 and the loader instead.",
    ["tier", "kind"],
)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INVALIDATION_LAG = Histogram(
    f"{NAMESPACE}_cache_invalidation_lag_seconds",
    "From a write's commit to its invalidation applied, by stage: l2 (the writer's invalidate.lua"
    " returned), l1 (each process's subscriber applied it), cdn (each CDN backend acknowledged the purge).",
    ["stage"],
    buckets=LAG_BUCKETS,
)
STALE_SERVED_AGE = Histogram(
    f"{NAMESPACE}_cache_stale_served_age_seconds",
    "Age (now - fill time) of the values served stale (stale-while-revalidate, stale-if-error).",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 86400),
)
REPLICA_FALLBACKS = Counter(
    f"{NAMESPACE}_cache_replica_fallbacks_total",
    "Loads or requests that read the primary instead of a replica, by reason: fence (a fill the"
    " replica's replay position could not vouch for: re-read, or with REPLICA_BEHIND=no_store"
    " answered uncached without a primary read), behind (the replica is far behind),"
    " unavailable (the replica did not answer), error (a load that read a replica failed, run again on"
    " the primary), no_l2 (Redis unreachable: no fence to check).",
    ["reason"],
)
BREAKER_OPEN = Gauge(
    f"{NAMESPACE}_breaker_open", "1 while the circuit breaker of a tier is open.", ["tier"], multiprocess_mode="livemax"
)

_MAX_PREFIXES = 200
L1_HIT_BATCH = 64
OTHER_PREFIX = "other"


class PrefixStats:
    """Counters of one logical key prefix: plain ints for /health/cache/ plus bound children."""

    __slots__ = (
        "prefix", "l1_hit", "l1_miss", "l2_hit", "l2_miss", "l2_stale", "loads", "_l1_hit_pushed",
        "_l1_hit", "_l1_miss", "_l2_hit", "_l2_miss", "_l2_stale", "_loads", "_load_seconds",
    )

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.l1_hit = self.l1_miss = self.l2_hit = self.l2_miss = self.l2_stale = self.loads = 0
        self._l1_hit_pushed = 0
        self._l1_hit = CACHE_REQUESTS.labels("l1", prefix, "hit")
        self._l1_miss = CACHE_REQUESTS.labels("l1", prefix, "miss")
        self._l2_hit = CACHE_REQUESTS.labels("l2", prefix, "hit")
        self._l2_miss = CACHE_REQUESTS.labels("l2", prefix, "miss")
        self._l2_stale = CACHE_REQUESTS.labels("l2", prefix, "stale")
        self._loads = CACHE_LOADS.labels(prefix)
        self._load_seconds = CACHE_LOAD_SECONDS.labels(prefix)

    # Plain int += may lose a count under thread races; these feed a health page, not billing.
    def hit_l1(self) -> None:
        # The hottest call of all: Prometheus gets L1 hits in batches of 64 (or at the next
        # slow-path call, snapshot() or flush_all()), which halves the cost of an L1 hit.
        self.l1_hit += 1
        if self.l1_hit - self._l1_hit_pushed >= L1_HIT_BATCH:
            self.push_l1_hits()

    def push_l1_hits(self) -> None:
        delta = self.l1_hit - self._l1_hit_pushed
        if delta > 0:
            self._l1_hit_pushed += delta
            self._l1_hit.inc(delta)

    def miss_l1(self) -> None:
        self.l1_miss += 1
        self._l1_miss.inc()
        self.push_l1_hits()

    def hit_l2(self) -> None:
        self.l2_hit += 1
        self._l2_hit.inc()

    def miss_l2(self) -> None:
        self.l2_miss += 1
        self._l2_miss.inc()

    def stale_l2(self, age: float | None = None) -> None:
        self.l2_stale += 1
        self._l2_stale.inc()
        if age is not None:
            STALE_SERVED_AGE.observe(max(0.0, age))

    def loaded(self, seconds: float) -> None:
        self.loads += 1
        self._loads.inc()
        self._load_seconds.observe(seconds)

    def as_dict(self) -> dict:
        l1_total = self.l1_hit + self.l1_miss
        l2_total = self.l2_hit + self.l2_miss + self.l2_stale
        return {
            "l1": {"hit": self.l1_hit, "miss": self.l1_miss, "hit_ratio": hit_ratio(self.l1_hit, l1_total)},
            "l2": {
                "hit": self.l2_hit,
                "miss": self.l2_miss,
                "stale": self.l2_stale,
                "hit_ratio": hit_ratio(self.l2_hit + self.l2_stale, l2_total),
            },
            "loads": self.loads,
        }


def hit_ratio(part: int, total: int) -> float | None:
    """part / total rounded to 4 places; None when there was no lookup (total 0)."""
    return round(part / total, 4) if total else None


_prefix_stats: dict[str, PrefixStats] = {}
_prefix_lock = threading.Lock()


def stats_for(prefix: str) -> PrefixStats:
    """The PrefixStats of a key prefix (created once; unknown prefixes beyond 200 share 'other')."""
    stats = _prefix_stats.get(prefix)
    if stats is None:
        with _prefix_lock:
            stats = _prefix_stats.get(prefix)
            if stats is None:
                if len(_prefix_stats) >= _MAX_PREFIXES:
                    prefix = OTHER_PREFIX
                    stats = _prefix_stats.get(prefix)
                if stats is None:
                    stats = _prefix_stats[prefix] = PrefixStats(prefix)
    return stats


def all_prefix_stats() -> dict[str, PrefixStats]:
    return dict(_prefix_stats)


def flush_all() -> None:
    """Push the batched L1 hit counts to Prometheus (the /metrics view calls this first)."""
    for stats in list(_prefix_stats.values()):
        stats.push_l1_hits()


def count_invalidation(kind: str, amount: int = 1) -> None:
    CACHE_INVALIDATIONS.labels(kind).inc(amount)


def after_fork_in_child() -> None:
    global _prefix_lock
    _prefix_lock = threading.Lock()  # it may have been held by another thread at fork time
    reset_local_counters()


def reset_local_counters() -> None:
    """Zero the in-process ints (after fork, a child starts its own counts). Prometheus values
    are left alone: in multiprocess mode each pid has its own files already."""
    for stats in _prefix_stats.values():
        stats.l1_hit = stats.l1_miss = stats.l2_hit = stats.l2_miss = stats.l2_stale = stats.loads = 0
        stats._l1_hit_pushed = 0
