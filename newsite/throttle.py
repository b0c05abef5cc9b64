"""Per-client budgets (SPEC section 5: "anonymous uncached reads and counters are rate-limited per
client (429 + Retry-After)").

- `client_address(request)`: who the client is. The addresses the request passed through are
  X-Forwarded-For's entries then REMOTE_ADDR; walking them from the right, the first one that is
  not one of our proxies (TRUSTED_PROXIES, networks: Varnish, nginx, a load balancer) is the
  client. A peer that is not ours is the client whatever it writes in X-Forwarded-For, and what
  a client writes left of the entry our outermost proxy appended is never reached, so no header
  picks an identity; the hop count does not need configuring. A request that only ever passed
  our own hosts (a warmer, a probe) is charged to its leftmost address. An IPv6 client is its
  /64 (one host owns a whole /64: a key per address would give it a budget per request), an
  IPv4-mapped IPv6 address is the IPv4 one.
- `spend(name, client)`: one unit of the budget `name` (settings THROTTLE, "N/S": N units per
  S-second window, per client). None when allowed; else the seconds until the window ends (the
  Retry-After). One Redis round trip on the cache engine's Redis, behind its breaker: a fixed
  window counter, INCR + EXPIRE NX + PTTL pipelined. Redis down or the breaker open: allowed
  and counted (result="unchecked"): the budgets are a fairness rule, and what they protect is
  guarded anyway (the database breaker, one load per key cluster-wide).
- A request is charged once per budget, however many loads it causes (a replica re-read, an
  early refresh): `charge` marks it. Early (XFetch) refreshes and the refresh of a soft-expired
  entry run the view, so they are charged to the request that triggers them.
- THROTTLE_EXEMPT: networks (CIDR) never charged (the operator's own monitoring, warmers, the
  test suite's loopback). The project's own in-process requests (warm_cache's Django client)
  carry the WSGI environ key INTERNAL, which no HTTP header can set: never charged either.

Why not django-ratelimit or DRF's throttles: both go through Django's cache API - DRF keeps a list
of timestamps with a get and a set (not atomic: a parallel flood of 100 requests passes it), and
django-ratelimit's add + incr costs two round trips - and neither goes through the engine's
breaker, so an unreachable Redis would cost every request a connect timeout.

Metric: newsite_throttle_total{budget,result} (allowed, refused, unchecked).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import JsonResponse
from prometheus_client import Counter
from rest_framework.throttling import BaseThrottle

from caching import CallersOwnRefusal, L2Unavailable
from caching.app_data import pipeline
from caching.keys import app_key, client_part

logger = logging.getLogger("newsite.throttle")

THROTTLED = Counter(
    "newsite_throttle_total",
    "Per-client budget checks by budget and result (allowed, refused, unchecked: Redis unavailable).",
    ["budget", "result"],
)

# The budgets (settings THROTTLE): a public read that no tier held (it runs the view), and a
# counted view (POST /api/articles/{id}/views/).
PUBLIC_MISS = "public_miss"
VIEWS = "views"
INTERNAL = "newsite.throttle.internal"  # a WSGI environ key: HTTP headers arrive as HTTP_*
CHARGED = "newsite.throttle.charged"  # + ".<budget>": what charge() answered for this request


def throttle_key(budget: str, client: str) -> str:
    """A client's fixed-window counter of one budget."""
    return app_key("throttle", budget, client_part(client))


@dataclass(frozen=True)
class Budget:
    name: str
    limit: int
    window: int  # seconds


@cache
def budget(name: str) -> Budget | None:
    """The budget `name` from settings THROTTLE ("N/S"), or None when off ("", "off", 0)."""
    spec = str(getattr(settings, "THROTTLE", {}).get(name, "") or "").strip().lower()
    if spec in ("", "off", "0"):
        return None
    limit, _, window = spec.partition("/")
    return Budget(name, int(limit), int(window or 1))


@cache
def _exempt() -> tuple:
    return networks(getattr(settings, "THROTTLE_EXEMPT", ()))


@cache
def _trusted() -> tuple:
    return networks(getattr(settings, "TRUSTED_PROXIES", ()))


def networks(specs) -> tuple:
    """ip_network of each CIDR in `specs` (ValueError on a bad one: newsite/ops/checks.py)."""
    return tuple(ipaddress.ip_network(net.strip(), strict=False) for net in specs if str(net).strip())


@receiver(setting_changed)
def _forget_settings(*, setting: str, **kwargs) -> None:
    if setting in ("THROTTLE", "THROTTLE_EXEMPT", "TRUSTED_PROXIES"):
        budget.cache_clear()
        _exempt.cache_clear()
        _trusted.cache_clear()


def _address(text: str):
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(request) -> str:
    """The client of the request (see the module docstring): an IPv4 address, an IPv6 /64, or
    what an untrusted hop wrote if it is no address at all ("" when there is nothing)."""
    meta = request.META
    hops = [part for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    hops.append(meta.get("REMOTE_ADDR", ""))
    trusted = _trusted()
    client = None
    for text in reversed(hops):
        client = text.strip()
        address = _address(client)
        if address is None or not any(address in net for net in trusted):
            break
    if client is None:
        return ""
    address = _address(client)
    if address is None:
        return client
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def exempt(client: str) -> bool:
    nets = _exempt()
    if not nets or not client:
        return False
    try:
        address = ipaddress.ip_network(client, strict=False)
    except ValueError:
        return False
    return any(address.subnet_of(net) for net in nets if net.version == address.version)


def spend(name: str, client: str) -> int | None:
    """Charge one unit of budget `name` to `client`: None when allowed, else the Retry-After."""
    spec = budget(name)
    if spec is None or exempt(client):
        return None
    key = throttle_key(name, client)
    try:
        used, _, left_ms = pipeline(lambda pipe: pipe.incr(key).expire(key, spec.window, nx=True).pttl(key))
    except L2Unavailable:
        THROTTLED.labels(name, "unchecked").inc()
        return None
    if int(used) <= spec.limit:
        THROTTLED.labels(name, "allowed").inc()
        return None
    THROTTLED.labels(name, "refused").inc()
    return max(1, math.ceil(int(left_ms) / 1000)) if int(left_ms) > 0 else spec.window


class BudgetThrottle(BaseThrottle):
    """A DRF throttle charging the view's client one unit of `budget` per request: DRF answers
    429 with Retry-After (the API's JSON error, code "throttled")."""

    budget = VIEWS

    def allow_request(self, request, view) -> bool:
        _, self.retry_after = charge(request, self.budget)
        return self.retry_after is None

    def wait(self) -> int | None:
        return self.retry_after


def charge(request, name: str) -> tuple[str, int | None]:
    """The request's client and spend(name, client) (None: allowed; internal requests are free),
    once per request and budget: a second load of the same request gets the first answer."""
    meta = request.META
    if meta.get(INTERNAL):
        return "", None
    mark = f"{CHARGED}.{name}"
    if mark not in meta:
        client = client_address(request)
        meta[mark] = (client, spend(name, client))
    return meta[mark]


def too_many_requests(retry_after: int, detail: str) -> JsonResponse:
    """429 with Retry-After and the API's JSON error (as DRF's Throttled), that no cache keeps."""
    response = JsonResponse({"error": "throttled", "detail": detail}, status=429)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


class OverBudget(CallersOwnRefusal):
    """A public miss refused by the client's budget. One of the tiers' LOADER_ERRORS: a stale
    entry answers it when there is one; else the client gets a 429 (newsite.middleware). A
    refusal of the caller, not of the key: single-flight followers load for themselves."""

    def __init__(self, client: str, retry_after: int):
        super().__init__(f"{client}: over its uncached-read budget for {retry_after} s")
        self.client = client
        self.retry_after = retry_after
