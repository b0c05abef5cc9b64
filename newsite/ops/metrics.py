"""HTTP metrics of newsite (the cache and CDN metrics of SPEC section 7 are in caching/metrics.py).

newsite_http_request_duration_seconds{endpoint,method,status}: whole-request latency, measured by
newsite.ops.middleware.RequestLatencyMiddleware (first in MIDDLEWARE). `endpoint` is the URL
name (namespace:name) or the route, never the raw path, so the label set stays bounded.
newsite_http_responses_total{endpoint,x_cache}: responses by which app tier served them.
"""

from prometheus_client import Counter, Histogram

REQUEST_LATENCY = Histogram(
    "newsite_http_request_duration_seconds",
    "Whole-request latency by endpoint (URL name), method and status class.",
    ["endpoint", "method", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RESPONSES = Counter(
    "newsite_http_responses_total",
    "Responses by endpoint and X-Cache (HIT-L1, HIT-L2, MISS, STALE; none when not cached).",
    ["endpoint", "x_cache"],
)
