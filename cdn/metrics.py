"""Prometheus metrics of the CDN purge outbox (SPEC section 7).

newsite_cdn_purges_total{backend,result}: one count per backend call of a drain, result ok,
error or dead. newsite_cdn_edge_acks_total{backend,result}: one count per write that waited for a
backend's nodes (cdn/edge_ack.py): acked, or why it fell back to the drain (timeout, error,
app_tiers_behind, row_busy). newsite_outbox_pending: rows not delivered yet, set from the database (one COUNT)
by cdn.outbox; "mostrecent" across processes under PROMETHEUS_MULTIPROC_DIR.
"""

from prometheus_client import Counter, Gauge

CDN_PURGES = Counter("newsite_cdn_purges_total", "CDN purge calls by backend and result.", ["backend", "result"])
OUTBOX_PENDING = Gauge(
    "newsite_outbox_pending", "CDN purge outbox rows not delivered yet.", multiprocess_mode="mostrecent"
)
EDGE_ACKS = Counter(
    "newsite_cdn_edge_acks_total",
    "Writes that waited for a CDN backend's nodes to confirm their purge, by backend and result "
    "(acked, or the fallback to the outbox's drain: timeout, error, app_tiers_behind, row_busy).",
    ["backend", "result"],
)
