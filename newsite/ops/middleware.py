"""RequestLatencyMiddleware: times every request (put it FIRST in MIDDLEWARE so the time covers
all the other middleware, the cache tiers included) into newsite_http_request_duration_seconds.

Cost per request: two perf_counter() calls, one dict lookup for the bound metric children and a
histogram observe. A request of the freshness canary (header X-Canary-Probe, newsite/ops/canary.py)
gets `X-Served-By: <pid>` on its response: which worker's L1 answered, and `Cache-Control:
no-store` (issue 28.9: a request header outside the key must not change what a shared cache
keeps for everyone). Every ~10 s it also
records a sample of this process's cache counters for the
windowed hit ratios of /health/cache/ (newsite.ops.hitratios).

`front_twin` does the same for the L1 and L2 hits the WSGI front answers (caching/front.py,
newsite/front.py): one recording function, so both paths count alike.
"""

from __future__ import annotations

import os
import time

from newsite.ops import hitratios
from newsite.ops.canary import PROBE_META, SERVED_BY_HEADER
from newsite.ops.metrics import REQUEST_LATENCY, RESPONSES

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_CHILDREN = 2000  # a safety bound on label combinations kept bound in this process

_children: dict[tuple, tuple] = {}


def endpoint_of(request) -> str:
    """The URL name with its namespace ("admin:index", "api-article"), else the route, else
    "unmatched" (404 before any view): never the raw path."""
    return endpoint_of_match(getattr(request, "resolver_match", None))


def endpoint_of_match(match) -> str:
    """endpoint_of() of a ResolverMatch (or None), or of what carries its url_name, view_name
    and route (the WSGI front's caching.front.Route)."""
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
        record(endpoint_of(request), request.method, response.status_code, response.get("X-Cache", "none"),
               time.perf_counter() - started)
        if PROBE_META in request.META:
            response[SERVED_BY_HEADER] = str(os.getpid())
            response["Cache-Control"] = "no-store"
        return response


def record(endpoint: str, method: str, status_code: int, x_cache: str, elapsed: float) -> None:
    """One response into newsite_http_request_duration_seconds / newsite_http_responses_total."""
    latency, responses = _bound(endpoint, method if method in _METHODS else "other",
                                f"{status_code // 100}xx", x_cache)
    latency.observe(elapsed)
    responses.inc()
    hitratios.maybe_sample()


def front_twin(hit) -> None:
    """This middleware's part of a response of the WSGI front (a caching.front.FrontHit; it
    runs last, as this middleware is first): the same metrics, X-Served-By for the canary."""
    environ = hit.environ
    record(endpoint_of_match(hit.route), environ["REQUEST_METHOD"], hit.status_code, hit.source,
           time.perf_counter() - hit.started)
    if PROBE_META in environ:
        hit.headers[:] = [pair for pair in hit.headers if pair[0].lower() != "cache-control"]
        hit.headers += [("Cache-Control", "no-store"), (SERVED_BY_HEADER, str(os.getpid()))]
