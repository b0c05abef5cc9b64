"""HTTP metrics of newsite (the cache and CDN metrics of SPEC section 7 are in caching/metrics.py).

newsite_http_request_duration_seconds{endpoint,method,status}: whole-request latency, measured by
newsite.ops.middleware.RequestLatencyMiddleware (first in MIDDLEWARE). `endpoint` is the URL
name (namespace:name) or the route, never the raw path, so the label set stays bounded.
newsite_http_responses_total{endpoint,x_cache}: responses by which app tier served them.

metrics_registry(): what /metrics exposes - every process's prometheus-client files when
PROMETHEUS_MULTIPROC_DIR is set, else this process's registry.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

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

# The freshness canary (newsite/ops/canary.py). "mostrecent": the last value set by any process
# wins (the Celery worker sets both after each run; a scrape refreshes the age from the row).
CANARY_SECONDS = Gauge(
    "newsite_freshness_canary_seconds",
    "Freshness canary: seconds from its write's commit until the tier (l2, l1, edge) showed the new"
    " value (the time waited when it never did within FRESHNESS_CANARY_TIMEOUT).",
    ["tier"],
    multiprocess_mode="mostrecent",
)
CANARY_AGE = Gauge(
    "newsite_freshness_canary_age_seconds",
    "Freshness canary: now minus the commit of the newest canary value the tier was seen serving"
    " (how stale a reader of that tier can be); refreshed at every scrape.",
    ["tier"],
    multiprocess_mode="mostrecent",
)


def metrics_registry():
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return registry
    return REGISTRY


def reap_dead_processes() -> int:
    """Drop the live gauges (multiprocess mode "live*") of the processes of PROMETHEUS_MULTIPROC_DIR
    that are gone, as gunicorn's child_exit hook does for its workers (deploy/gunicorn.conf.py):
    granian has no such hook, so every new worker does it when it imports the app (newsite/wsgi.py).
    Counters and histograms of dead processes stay: /metrics keeps summing what they counted.
    Returns the number of processes reaped."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path or not os.path.isdir(path):
        return 0
    dead = set()
    for name in os.listdir(path):
        if name.startswith("gauge_live") and name.endswith(".db"):
            pid = name[:-3].rsplit("_", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)):
                dead.add(int(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return len(dead)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (of any user). Also deploy/gunicorn.conf.py's on_starting."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
