"""CDN metrics: newsite_cdn_purges_total{backend,result} and newsite_outbox_pending.

Every metric is defined in caching/metrics.py; this module re-exports the two the outbox uses
(with a local definition only if that module is missing them, so cdn/ stands alone)."""

try:
    from caching.metrics import CDN_PURGES, OUTBOX_PENDING
except ImportError:  # caching/ without its metrics module: define them here instead
    from prometheus_client import Counter, Gauge

    CDN_PURGES = Counter(
        "newsite_cdn_purges_total", "CDN purge calls by backend and result.", ["backend", "result"]
    )
    OUTBOX_PENDING = Gauge(
        "newsite_outbox_pending", "CDN purge outbox rows not delivered yet.", multiprocess_mode="mostrecent"
    )

__all__ = ["CDN_PURGES", "OUTBOX_PENDING"]
