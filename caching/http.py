"""HTTP response caching and the header policy of public responses (SPEC section 4).

A public view declares a `ResponsePolicy` with `@cache_public(...)`. `PublicResponseCacheMiddleware`
(caching/middleware.py) finds it after URL resolution, builds the key from the route and the
view's own validated parameters, and asks the tiers for a ready-to-send `ResponseEntry` (body
bytes plus precomputed header values): a hit builds no serializer and runs no query. On a miss
the view runs as usual inside the tiers' lease and its 200 becomes an entry; a 404 becomes a
cached negative (None, kind "negative") tagged so that creating the object removes it; any other
status passes through uncached.

Headers of every public 200: Cache-Control from settings.NEWSITE_CACHE_KINDS, Surrogate-Key
(space-separated tags), Cache-Tag (comma-separated), ETag, Last-Modified when the data has one,
Vary: Accept-Encoding, Age and X-Cache (HIT-L1 / HIT-L2 / MISS / STALE).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from django.utils.http import http_date, parse_etags, parse_http_date_safe

from caching.params import ParamError, parse_params

NEGATIVE_CACHE_CONTROL = "public, max-age=30, s-maxage=30"


def cache_control_for(kind: str) -> str:
    """`public, max-age=B, s-maxage=E, stale-while-revalidate=S, stale-if-error=X` for a kind."""
    spec = settings.NEWSITE_CACHE_KINDS[kind]
    parts = [f"public, max-age={spec['max_age']}, s-maxage={spec['s_maxage']}"]
    if spec.get("swr"):
        parts.append(f"stale-while-revalidate={spec['swr']}")
    if spec.get("sie"):
        parts.append(f"stale-if-error={spec['sie']}")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class ResponseEntry:
    """A ready-to-send public response, as stored in L1 and L2."""

    status: int
    body: bytes
    content_type: str
    etag: str  # quoted strong validator
    last_modified: int | None  # epoch seconds
    cache_control: str
    tags: tuple[str, ...]
    # The static headers, already validated and encoded at fill time, in the shape of Django's
    # ResponseHeaders store ({lowercased name: (name, value)}): a hit copies them in one update
    # instead of ~8 validating __setitem__ calls (9 us -> 1 us per response, measured).
    header_store: tuple = ()


class Uncacheable(Exception):  # noqa: N818 (a control-flow signal carrying the response)
    """Raised out of a loader to hand back a response that must not be cached (400, 3xx, 5xx)."""

    def __init__(self, response: HttpResponse):
        super().__init__(response.status_code)
        self.response = response


@dataclass(frozen=True)
class ResponsePolicy:
    """How one public view is cached.

    kind: the row of NEWSITE_CACHE_KINDS (TTL and Cache-Control).
    params: the view's own query parameters (caching.params specs); only those enter the key,
        parsed and sorted. Anything else in the query string is ignored.
    negative_tags: tags of a cached 404, from the view's URL kwargs: what creating the missing
        object invalidates.
    html: the view renders HTML (its 404 is the HTML 404 page).
    """

    kind: str
    params: tuple = ()
    negative_tags: Callable[[dict], Iterable[str]] = field(default=lambda kwargs: ())
    html: bool = False

    def validated_params(self, query) -> dict | None:
        """The view's own parameters, parsed; None when invalid (the view answers 400)."""
        if not self.params:
            return {}
        try:
            return parse_params(self.params, query)
        except ParamError:
            return None


def cache_public(*, kind: str, params: tuple = (), negative_tags=None, html: bool = False):
    """Mark a view (function or class) as a public, cacheable read."""
    policy = ResponsePolicy(kind=kind, params=params, negative_tags=negative_tags or (lambda kwargs: ()), html=html)

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
    probe["ETag"] = etag
    if last_modified is not None:
        probe["Last-Modified"] = http_date(last_modified)
    _tag_headers(probe, tags)
    probe["Vary"] = "Accept-Encoding"
    return tuple(probe.headers._store.items())


def entry_from_response(response: HttpResponse, policy: ResponsePolicy) -> ResponseEntry:
    body = response.content
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    # Last-Modified is never earlier than the fill: a list whose newest item was unpublished, or
    # a detail whose counts changed, has an older data date but a newer response; every change
    # invalidates, and the refill is later than the change.
    last_modified = max(getattr(response, "cache_last_modified", None) or 0, int(time.time()))
    cache_control = cache_control_for(policy.kind)
    tags = tuple(getattr(response, "cache_tags", ()))
    return ResponseEntry(
        status=response.status_code,
        body=body,
        content_type=response.get("Content-Type", "application/json"),
        etag=etag,
        last_modified=last_modified,
        cache_control=cache_control,
        tags=tags,
        header_store=_static_headers(cache_control=cache_control, etag=etag, last_modified=last_modified, tags=tags),
    )


# --- serving entries -------------------------------------------------------------------------


def _not_modified(request, etag: str, last_modified: int | None) -> bool:
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        candidates = {t.removeprefix("W/") for t in parse_etags(if_none_match)}  # weak comparison
        return "*" in candidates or etag in candidates
    if_modified_since = request.META.get("HTTP_IF_MODIFIED_SINCE")
    if if_modified_since and last_modified is not None:
        since = parse_http_date_safe(if_modified_since)
        return since is not None and last_modified <= since
    return False


def _tag_headers(response: HttpResponse, tags: Iterable[str]) -> None:
    tags = tuple(tags)
    if tags:
        response["Surrogate-Key"] = " ".join(tags)
        response["Cache-Tag"] = ",".join(tags)


def serve_entry(request, entry: ResponseEntry, *, source: str, filled_at: float) -> HttpResponse:
    if _not_modified(request, entry.etag, entry.last_modified):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(entry.body, status=entry.status, content_type=entry.content_type)
    store = response.headers._store  # CaseInsensitiveMapping's dict; values validated at fill
    store.update(entry.header_store)
    store["age"] = ("Age", str(max(0, int(time.time() - filled_at))))
    store["x-cache"] = ("X-Cache", source)  # one of four ASCII constants
    return response


_NOT_FOUND_JSON = b'{"error":"not_found","detail":"Not found."}'


def serve_negative(request, policy: ResponsePolicy, kwargs: dict, *, source: str, filled_at: float) -> HttpResponse:
    """A cached 404: short public TTL, tagged so that the object's creation purges it."""
    if policy.html:
        from django.template.loader import render_to_string

        response = HttpResponse(render_to_string("articles/404.html"), status=404)
    else:
        response = HttpResponse(_NOT_FOUND_JSON, status=404, content_type="application/json")
    response["Cache-Control"] = NEGATIVE_CACHE_CONTROL
    _tag_headers(response, policy.negative_tags(kwargs))
    response["Vary"] = "Accept-Encoding"
    response["Age"] = str(max(0, int(time.time() - filled_at)))
    response["X-Cache"] = source
    return response
