"""HTTP response caching and the header policy of public responses (SPEC section 4).

A public view declares a `ResponsePolicy` with `@cache_public(...)`. `PublicResponseCacheMiddleware`
(caching/middleware.py) finds it after URL resolution, parses the view's own query parameters
once (the view reads them with `request_params(request, view)`), builds the key from the route and
those parameters, and asks the tiers for a ready-to-send `ResponseEntry` (body bytes plus
precomputed header values): a hit builds no serializer and runs no query. On a miss the view
runs as usual inside the tiers' lease and its 200 becomes an entry; a 404 becomes a cached
negative (None, kind "negative") tagged so that creating the object removes it, answered with
the policy's own 404 body; any other status passes through uncached.

Headers of every public 200: Cache-Control of the view's kind (caching.conf), Surrogate-Key
(space-separated tags), Cache-Tag (comma-separated), ETag, Last-Modified when the data has one,
Vary: Accept-Encoding, Age and X-Cache (HIT-L1 / HIT-L2 / MISS / STALE). This module knows no
view, template or error format of its users: those come in through the policy.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import http_date, parse_etags, parse_http_date_safe

from caching import conf, lifetime
from caching.params import ParamError, parse_params


def cache_control_for(kind: str) -> str:
    """`public, max-age=B, s-maxage=E, stale-while-revalidate=S, stale-if-error=X` of a kind,
    from the resolved configuration (KeyError for an unknown kind)."""
    return conf.get().kind(kind).cache_control


# A ready-to-send public response as the tiers keep it (L1 as it is, L2 pickled): an exact tuple
# of numbers, strings, bytes and tuples of those, which the garbage collector stops tracking once
# its collections have looked at it (a level of nesting each) - an L1 full of responses then
# costs a full collection nothing (caching/l1.py, issue 29). A dataclass or NamedTuple instance would stay tracked (CPython untracks only exact
# tuples and dicts): build one with response_entry(), read it by unpacking or with these indexes.
ResponseEntry = tuple
STATUS, BODY, CONTENT_TYPE, ETAG, LAST_MODIFIED, CACHE_CONTROL, TAGS, HEADER_STORE = range(8)


def response_entry(*, status: int, body: bytes, content_type: str, etag: str, last_modified: int | None,
                   cache_control: str, tags: tuple, header_store: tuple = ()) -> ResponseEntry:
    """etag: the quoted strong validator ("" for a 404); last_modified: epoch seconds or None;
    header_store: the static headers as (name, value) pairs, validated and encoded at fill time:
    a hit copies them instead of ~8 validating __setitem__ calls (9 us -> 1 us per response).
    Pairs, not Django's {lowercased name: (name, value)} items: one level of tuples less, which
    the collector untracks one collection sooner (caching/l1.py)."""
    return (status, body, content_type, etag, last_modified, cache_control, tags, header_store)


def is_response_entry(value) -> bool:
    """What a response key holds: an entry, or None (a cached negative)."""
    return type(value) is tuple


class Uncacheable(Exception):  # noqa: N818 (a control-flow signal carrying the response)
    """Raised out of a loader to hand back a response that must not be cached (400, 3xx, 5xx)."""

    def __init__(self, response: HttpResponse):
        super().__init__(response.status_code)
        self.response = response


def _no_tags(kwargs: dict) -> tuple:
    return ()


def plain_not_found(request: HttpRequest) -> HttpResponse:
    """The default body of a cached 404 (users pass their own: JSON error, HTML page)."""
    return HttpResponse(b"Not found.", status=404, content_type="text/plain; charset=utf-8")


@dataclass(frozen=True)
class ResponsePolicy:
    """How one public view is cached.

    kind: a cache kind of caching.conf (TTL and Cache-Control).
    params: the view's own query parameters (caching.params specs); only those enter the key,
        parsed and sorted. Anything else in the query string is ignored.
    negative_tags: tags of a cached 404, from the view's URL kwargs: what creating the missing
        object invalidates.
    not_found: builds the body of the 404 served from a cached negative, per request. It is a
        public response: it must not depend on who asks.
    """

    kind: str
    params: tuple = ()
    negative_tags: Callable[[dict], Iterable[str]] = _no_tags
    not_found: Callable[[HttpRequest], HttpResponse] = plain_not_found

    @cached_property
    def param_names(self) -> frozenset:
        """The names of the view's own parameters (computed once; the policy need not be hashable)."""
        return frozenset(p.name for p in self.params)

    def parse_params(self, query) -> dict:
        """The view's own parameters read from a QueryDict; raises ParamError."""
        return parse_params(self.params, query) if self.params else {}


def cache_public(*, kind: str, params: tuple = (), negative_tags=None, not_found=None):
    """Mark a view (function or class) as a public, cacheable read."""
    policy = ResponsePolicy(
        kind=kind, params=params, negative_tags=negative_tags or _no_tags, not_found=not_found or plain_not_found
    )

    def decorate(view):
        view.cache_policy = policy
        return view

    return decorate


def policy_of(view_func) -> ResponsePolicy | None:
    policy = getattr(view_func, "cache_policy", None)
    if policy is None:
        view_class = getattr(view_func, "view_class", None)
        policy = getattr(view_class, "cache_policy", None)
    return policy


# --- query parameters, parsed once per request -----------------------------------------------


def read_params(request: HttpRequest, policy: ResponsePolicy) -> dict | None:
    """Parse the view's parameters and keep the result on `request.cache_params` (the dict, or
    the ParamError of a bad value). Returns the dict, None when a value is bad."""
    try:
        params = policy.parse_params(request.GET)
    except ParamError as exc:
        request.cache_params = exc
        return None
    request.cache_params = params
    return params


def request_params(request, view) -> dict:
    """The query parameters of the public `view` (its function, class or instance), as the
    middleware parsed them for the key; raises ParamError for a bad value (the view answers
    400). When the middleware did not parse them (not installed, or the view was called by
    another view), they are parsed here, once, from the view's policy."""
    if not hasattr(request, "cache_params"):
        read_params(request, policy_of(view))
    params = request.cache_params
    if isinstance(params, ParamError):
        raise params
    return params


# --- building entries ------------------------------------------------------------------------


def set_cache_tags(response: HttpResponse, tags: Iterable[str], *, last_modified: datetime | str | None = None):
    """Views call this to say what their response depends on (and when it last changed)."""
    response.cache_tags = tuple(dict.fromkeys(t for t in tags if t))
    if last_modified is not None:
        if isinstance(last_modified, str):
            last_modified = datetime.fromisoformat(last_modified)
        response.cache_last_modified = int(last_modified.timestamp())
    return response


def _static_headers(*, cache_control: str, etag: str, last_modified: int | None, tags) -> tuple:
    probe = HttpResponse()  # Django validates and encodes each value here, once per fill
    probe.headers.pop("Content-Type", None)
    probe["Cache-Control"] = cache_control
    if etag:
        probe["ETag"] = etag
    if last_modified is not None:
        probe["Last-Modified"] = http_date(last_modified)
    _tag_headers(probe, tags)
    probe["Vary"] = "Accept-Encoding"
    # (name, value) pairs, validated and encoded by Django: the WSGI front extends its header
    # list with them as they are, serve_entry() keys them as Django's header store does.
    return tuple(probe.headers._store.values())


def _cache_control(kind: str) -> str:
    """The kind's Cache-Control, capped by the moment the response being built stops being true
    (caching.lifetime, named by the view's reads during this load)."""
    spec = conf.get().kind(kind)
    until = lifetime.current_until()
    return spec.cache_control if until is None else spec.cache_control_within(until - time.time())


def strong_etag(body: bytes) -> str:
    """The quoted strong validator of a public response's body (what its ETag header says)."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def entry_from_response(response: HttpResponse, policy: ResponsePolicy) -> ResponseEntry:
    body = response.content
    etag = strong_etag(body)
    # Last-Modified is never earlier than the fill: a list whose newest item was unpublished, or
    # a detail whose counts changed, has an older data date but a newer response; every change
    # invalidates, and the refill is later than the change.
    last_modified = max(getattr(response, "cache_last_modified", None) or 0, int(time.time()))
    cache_control = _cache_control(policy.kind)
    tags = tuple(getattr(response, "cache_tags", ()))
    return response_entry(
        status=response.status_code,
        body=body,
        content_type=response.get("Content-Type", "application/json"),
        etag=etag,
        last_modified=last_modified,
        cache_control=cache_control,
        tags=tags,
        header_store=_static_headers(cache_control=cache_control, etag=etag, last_modified=last_modified, tags=tags),
    )


def unshared_cache_control(cache_control: str) -> str:
    """For a value the shared tier did not admit (first sight of a "second_hit" key): the
    browser keeps it for the max-age `cache_control` gives, shared caches not at all."""
    max_age = next((p.strip() for p in cache_control.split(",") if p.strip().startswith("max-age=")), "max-age=0")
    return f"public, {max_age}, s-maxage=0"


def not_found_entry(request: HttpRequest, policy: ResponsePolicy, kwargs: dict) -> ResponseEntry:
    """A 404 that turns into something at a known moment (a scheduled item: the view's reads
    named it with caching.lifetime.valid_until): kept as an entry of the policy's kind, whose
    lifetime the tiers cap at that moment, with the "negative" kind's Cache-Control capped the
    same way and the negative tags. A plain 404 (no moment) is a cached None instead."""
    response = policy.not_found(request)
    body = response.content
    cache_control = _cache_control(conf.NEGATIVE_KIND)
    tags = tuple(policy.negative_tags(kwargs))
    return response_entry(
        status=404,
        body=body,
        content_type=response.get("Content-Type", "application/json"),
        etag="",
        last_modified=None,
        cache_control=cache_control,
        tags=tags,
        header_store=_static_headers(cache_control=cache_control, etag="", last_modified=None, tags=tags),
    )


# --- serving entries -------------------------------------------------------------------------


def not_modified(meta, etag: str, last_modified: int | None) -> bool:
    """Whether the conditional headers of a request's META (or a WSGI environ: the same keys)
    let it have a 304: If-None-Match (weak comparison) first, else If-Modified-Since."""
    if_none_match = meta.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        candidates = {t.removeprefix("W/") for t in parse_etags(if_none_match)}  # weak comparison
        return "*" in candidates or etag in candidates
    if_modified_since = meta.get("HTTP_IF_MODIFIED_SINCE")
    if if_modified_since and last_modified is not None:
        since = parse_http_date_safe(if_modified_since)
        return since is not None and last_modified <= since
    return False


def _tag_headers(response: HttpResponse, tags: Iterable[str]) -> None:
    tags = tuple(tags)
    if tags:
        response["Surrogate-Key"] = " ".join(tags)
        response["Cache-Tag"] = ",".join(tags)


def age_header(filled_at: float) -> tuple[str, str]:
    """The Age header of an entry filled at `filled_at` (epoch seconds), in whole seconds rounded
    up (RFC 9111 allows an overestimate): a cache adding its own Age, rounded down, then never
    keeps a response past the moment its lifetime was capped at (caching.lifetime)."""
    return ("Age", str(max(0, math.ceil(time.time() - filled_at))))


def serve_entry(request, entry: ResponseEntry, *, source: str, filled_at: float) -> HttpResponse:
    """The response of an entry (a 304 when the request's validators match). The WSGI front
    (caching/front.py) builds the same status and headers without an HttpResponse."""
    status, body, content_type, etag, last_modified, _, _, header_store = entry
    if etag and not_modified(request.META, etag, last_modified):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(body, status=status, content_type=content_type)
    store = response.headers._store  # CaseInsensitiveMapping's dict; values validated at fill
    store.update((pair[0].lower(), pair) for pair in header_store)
    store["age"] = age_header(filled_at)
    store["x-cache"] = ("X-Cache", source)  # one of four ASCII constants
    return response


def serve_negative(request, policy: ResponsePolicy, kwargs: dict, *, source: str, filled_at: float) -> HttpResponse:
    """A cached 404: the policy's 404 body, the "negative" kind's Cache-Control, tagged so that
    the object's creation purges it."""
    response = policy.not_found(request)
    response["Cache-Control"] = cache_control_for(conf.NEGATIVE_KIND)
    _tag_headers(response, policy.negative_tags(kwargs))
    response["Vary"] = "Accept-Encoding"
    response["Age"] = age_header(filled_at)[1]
    response["X-Cache"] = source
    return response
