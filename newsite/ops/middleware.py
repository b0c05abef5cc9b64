"""RequestLatencyMiddleware: times every request (put it FIRST in MIDDLEWARE so the time covers
all the other middleware, the cache tiers included) into newsite_http_request_duration_seconds.

Cost per request: two perf_counter() calls, one dict lookup for the bound metric children and a
histogram observe. A request of the freshness canary (header X-Canary-Probe, newsite/ops/canary.py)
gets `X-Served-By: <pid>` on its response: which worker's L1 answered. Every ~10 s it also
records a sample of this process's cache counters for the
windowed hit ratios of /health/cache/ (newsite.ops.cachestats).
"""

from __future__ import annotations

import os
import time

from newsite.ops import cachestats
from newsite.ops.canary import PROBE_META, SERVED_BY_HEADER
from newsite.ops.metrics import REQUEST_LATENCY, RESPONSES

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_CHILDREN = 2000  # a safety bound on label combinations kept bound in this process

_children: dict[tuple, tuple] = {}


def endpoint_of(request) -> str:
    """The URL name with its namespace ("admin:index", "api-article"), else the route, else
    "unmatched" (404 before any view): never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    if match.url_name:
        return match.view_name
    return match.route or "unnamed"


def _bound(endpoint: str, method: str, status: str, x_cache: str):
    key = (endpoint, method, status, x_cache)
    pair = _children.get(key)
    if pair is None:
        pair = (REQUEST_LATENCY.labels(endpoint, method, status), RESPONSES.labels(endpoint, x_cache))
        if len(_children) < _MAX_CHILDREN:
            _children[key] = pair
    return pair


class RequestLatencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in _METHODS else "other"
        status = f"{response.status_code // 100}xx"
        latency, responses = _bound(endpoint_of(request), method, status, response.get("X-Cache", "none"))
        latency.observe(elapsed)
        responses.inc()
        cachestats.maybe_sample()
        if PROBE_META in request.META:
            response[SERVED_BY_HEADER] = str(os.getpid())
        return response
