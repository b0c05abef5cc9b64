"""The front: L1 and L2 hits of public views answered before Django's request machinery, under
WSGI (`ResponseFront`) or ASGI (`AsgiResponseFront`, at the end: the same decision - recognise,
from_l1, from_l2, finish - with its own L2 read and its own sends).

`ResponseFront(app, gates=..., twins=...)` wraps a Django WSGI application. For a request it
recognises - GET or HEAD, no X-Edge-Fetch, a path that resolves (Django's resolver, cached per
path) to a view marked `caching.http.cache_public`, a query string holding only that view's own
parameters with valid values, every gate of the project open - it builds the key exactly as
PublicResponseCacheMiddleware does (`keys.response_key(url_name, kwargs, params)`), looks it up
in this process's L1 (the fetch face's: same entries, same invalidation, same broadcast) and,
on a hit of a 200 entry, answers from it: the status, Content-Type, the entry's precomputed
headers, Age, X-Cache: HIT-L1, a 304 when the validators match (`caching.http.not_modified`),
then the headers the project's middleware would have added (its `twins`). No HttpRequest, no
HttpResponse, no middleware call.

On an L1 miss it makes the fetch's own L2 read early (`caching.early_read.EarlyRead`: the same
SET NX GET that takes the lease of a cold key) and answers a plain L2 hit of a 200 entry the
same way (X-Cache: HIT-L2, L1 backfilled and counted as fetch() does: `EarlyRead.fresh_hit`).
Anything else that read found - absent (the lease is now ours), another's lease, soft-expired,
picked for an early refresh, a cached 404, overtaken by an invalidation - goes to Django with
the read stored in the environ (`EarlyRead.store`), and the middleware's fetch continues from
it: a miss still costs 2 Redis round trips, not 3. A read Django did not use (a middleware
answered first, a single-flight follower) is given back after Django's answer
(`EarlyRead.give_back`: the lease).
Everything else - a bad or foreign parameter, any other method, a gate closed, L2 unreachable
- goes to the wrapped application unchanged.

Cost of a hit: one dict lookup for the route, the parameter parse (none without a query
string), one key build, one L1 lookup (a lock and a dict get), a header list and the twins; an
L2 hit adds the Redis round trip and the envelope's decoding.
The library knows no middleware: the project says what its stack adds (its own twins and gates).

The L1 lookup is the one of `caching.fetch()` (fetcher.py): the face's L1 and the same
counter (<namespace>_cache_requests_total{tier="l1",result="hit"}). There is no other rule: the
subscriber clears L1 whenever the broadcast is lost, stuck or back, and refuses fills until it
is subscribed again, so what L1 holds is what fetch() would serve. An L1 miss is not counted
here: Django's path counts it (fetch_slow), or `fresh_hit` when the front answers from L2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import responses

from asgiref.sync import sync_to_async
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.wsgi import get_path_info
from django.http import QueryDict
from django.urls import Resolver404, get_resolver

from caching import aio, conf, fetcher, keys, metrics
from caching.broadcast import DOWN
from caching.early_read import EarlyRead
from caching.http import ResponseEntry, age_header, is_response_entry, not_modified, policy_of
from caching.l1 import FILLED_AT, HIT_L1, HIT_L2, PREFIX, VALUE
from caching.l2 import L2Unavailable
from caching.middleware import EDGE_FETCH_HEADER, SAFE
from caching.params import ParamError

ROUTE_CACHE_MAX = 10_000  # paths remembered (resolved or not); the table is emptied when full
_EMPTY_QUERY = QueryDict("")
_NOT_MODIFIED = "304 Not Modified"
L1_MISS = object()  # ResponseFront.from_l1: not in L1 (read L2)


def _status_line(status_code: int) -> str:
    return f"{status_code} {responses.get(status_code, 'Unknown Status Code')}"


@dataclass(slots=True)
class Route:
    """A path that resolves to a public view: what its key and its metrics need. Up to
    ROUTE_CACHE_MAX of them live in a worker, so a Route keeps the three names the project's
    twins read off a ResolverMatch (url_name, view_name, route) and not the match itself: a
    ResolverMatch holds ~16 lists the garbage collector tracks, and 10,000 cached matches made
    every full collection scan 150,000 objects (150-300 ms under the Zipf workload; issue 29).
    Left: this object (the kwargs dict holds only strings and numbers, which is never tracked)."""

    policy: object  # caching.http.ResponsePolicy
    url_name: str
    kwargs: dict
    param_names: frozenset  # one per policy, shared
    view_name: str
    route: str  # the matched pattern
    plain_key: str | None = None  # the key without a query string (parameters at their defaults)


@dataclass(slots=True)
class FrontHit:
    """One response being answered by the front; twins append their headers to `headers`."""

    environ: dict
    route: Route
    status_code: int
    headers: list
    body: bytes  # the GET body (also for HEAD: the server drops it, as with Django's responses)
    started: float  # time.perf_counter() when the front received the request
    source: str = HIT_L1  # X-Cache: HIT-L1 or HIT-L2


Gate = Callable[[dict], bool]  # environ -> may the front answer it
Twin = Callable[[FrontHit], None]  # adds what one middleware adds to a cached response


class ResponseFront:
    def __init__(self, app, *, gates: Sequence[Gate] = (), twins: Sequence[Twin] = ()):
        """`gates` run before the lookup (any False: Django answers); `twins` run on every
        response the front makes, in the order Django's process_response would (innermost
        middleware first)."""
        self.app = app
        self.gates = tuple(gates)
        self.twins = tuple(twins)
        self._routes: dict[str, Route | None] = {}
        self.served = 0  # plain ints for /health/cache/ (races may lose a count)
        self.served_l2 = 0
        self.passed = 0

    def __call__(self, environ, start_response):
        """The WSGI adapter."""
        started = time.perf_counter()
        hit = self._hit(environ, started)
        if hit is None:
            self.passed += 1
            try:
                return self.app(environ, start_response)
            finally:
                early_read = EarlyRead.stored(environ)
                if early_read is not None:
                    early_read.give_back()  # nothing when the fetch continued from it
        status_code, headers = self.finish(hit)
        start_response(_NOT_MODIFIED if status_code == 304 else _status_line(status_code), headers)
        return [b""] if status_code == 304 else [hit.body]

    def finish(self, hit: FrontHit) -> tuple[int, list]:
        """A hit's status code and headers, once the project's twins added theirs (both adapters)."""
        self.served += 1
        for twin in self.twins:
            twin(hit)
        return hit.status_code, hit.headers

    # --- recognising a request ---------------------------------------------------------------

    def route(self, raw_path: str) -> Route | None:
        """The public route of a path, or None (not resolvable, not a public view). `raw_path`
        is the environ's PATH_INFO as the server gives it (PEP 3333: bytes as latin-1): the
        cache is keyed by it, and Django's decoding (get_path_info) runs only on a miss. For an
        ASCII path both are the same string."""
        routes = self._routes
        try:
            return routes[raw_path]
        except KeyError:
            pass
        route = None
        try:
            match = get_resolver().resolve(get_path_info({"PATH_INFO": raw_path}) or "/")
        except Resolver404:
            match = None
        if match is not None:
            policy = policy_of(match.func)
            if policy is not None and not match.args:
                route = Route(policy, match.url_name, match.kwargs, policy.param_names, match.view_name, match.route)
        if len(routes) >= ROUTE_CACHE_MAX:
            routes.clear()  # bounded: hostile paths cost a resolve each, never memory
        routes[raw_path] = route
        return route

    def recognise(self, environ) -> tuple[Route, str] | None:
        """(route, key) of a request the front may answer from the tiers, or None (Django
        answers): the method, the route, the gates, the query string, the cache switch. Shared
        by the WSGI and ASGI adapters (`environ`: a WSGI environ, or the ASGI front's twin of
        one, scope_environ below)."""
        if environ.get("REQUEST_METHOD") not in SAFE or EDGE_FETCH_HEADER in environ:
            return None
        route = self.route(environ.get("PATH_INFO") or "/")
        if route is None:
            return None
        for gate in self.gates:
            if not gate(environ):
                return None
        raw_query = environ.get("QUERY_STRING")
        if raw_query:
            # As WSGIRequest.GET parses it (bytes of the environ, DEFAULT_CHARSET).
            try:
                query = QueryDict(raw_query.encode("iso-8859-1"))
            except (UnicodeEncodeError, SuspiciousOperation):
                # Not a PEP 3333 environ, or more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
                # (issue 28.5: a 500 here): Django says what it makes of it (a 400).
                return None
            own = route.param_names
            for name in query:
                if name not in own:
                    return None  # outside the key: Django decides (the 404 rule of the middleware)
            key = self._key(route, query)
        else:
            key = route.plain_key
            if key is None:
                key = route.plain_key = self._key(route, _EMPTY_QUERY)
        if key is None:
            return None  # a bad value (or a required parameter missing): the view answers 400
        if not conf.get().enabled:
            return None
        return route, key

    def from_l1(self, entry, environ, route: Route, started: float) -> FrontHit | None | object:
        """The answer of an L1 `entry` (the adapter looks it up, each its own way: L1.get, or
        L1.aget, which never blocks the event loop); None when Django must answer (a cached
        404); L1_MISS when L1 does not hold it (the adapter reads L2, each its own way)."""
        if entry is None:
            return L1_MISS
        value = entry[VALUE]
        if value is None:
            return None  # a cached 404: its body is the project's view of the request
        metrics.stats_for(entry[PREFIX]).hit_l1()
        return self._answer(environ, route, value, entry[FILLED_AT], HIT_L1, started, False)

    def from_l2(self, early_read: EarlyRead, environ, route: Route, started: float) -> FrontHit | None:
        """The answer of a plain L2 hit found by `early_read` (counted, L1 backfilled), or None."""
        fetched = early_read.fresh_hit(is_response_entry)
        if fetched is None:
            return None
        self.served_l2 += 1
        return self._answer(environ, route, fetched.value, fetched.filled_at, HIT_L2, started, fetched.superseded)

    def _hit(self, environ, started: float) -> FrontHit | None:
        found = self.recognise(environ)
        if found is None:
            return None
        route, key = found
        face = fetcher.current()
        l1 = face.l1
        hit = self.from_l1(l1.get(key) if l1 is not None else None, environ, route, started)
        if hit is not L1_MISS:
            return hit
        early_read = EarlyRead.start(face, key)
        if early_read is None:
            return None  # another thread of this process is fetching it: Django's fetch joins it
        hit = self.from_l2(early_read, environ, route, started)
        if hit is None:
            early_read.store(environ)  # Django's fetch continues from this read
        return hit

    @staticmethod
    def _answer(environ, route: Route, value: ResponseEntry, filled_at: float, source: str, started: float,
                superseded: bool) -> FrontHit:
        """The answer of an entry, as serve_entry and the middleware make it (superseded: the
        tiers refused it meanwhile: this request may have it, no shared cache may keep it)."""
        status, body, content_type, etag, last_modified, _, _, header_store = value
        if etag and not_modified(environ, etag, last_modified):
            status, headers = 304, []
        else:
            headers = [("Content-Type", content_type)]
        if superseded:
            headers.extend(("Cache-Control", "no-store") if pair[0] == "Cache-Control" else pair
                           for pair in header_store)
        else:
            headers.extend(header_store)
        headers.append(age_header(filled_at))
        headers.append(("X-Cache", source))
        return FrontHit(environ, route, status, headers, body, started, source)

    @staticmethod
    def _key(route: Route, query) -> str | None:
        """The middleware's key of this route and query (None: a bad parameter value)."""
        try:
            params = route.policy.parse_params(query)
        except ParamError:
            return None
        return keys.response_key(route.url_name, route.kwargs, params)

    def snapshot(self) -> dict:
        return {"enabled": True, "served": self.served, "served_from_l2": self.served_l2, "passed_to_django": self.passed,
                "routes_cached": len(self._routes), "twins": len(self.twins), "gates": len(self.gates)}


def scope_environ(scope) -> dict:
    """The WSGI-shaped dict the front's decision reads, from an ASGI HTTP scope: the META
    Django's ASGIRequest builds (method, path, query string, server, client, HTTP_* headers,
    joined with "," when repeated, names with "_" dropped), with PATH_INFO and QUERY_STRING in
    PEP 3333's form (bytes as latin-1), so that the route cache, get_path_info and the query
    parse see what a WSGI server would give them."""
    path = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root):]
    environ = {
        "REQUEST_METHOD": scope["method"].upper(),
        "PATH_INFO": path.encode("utf-8").decode("iso-8859-1") if not path.isascii() else path,
        "QUERY_STRING": scope.get("query_string", b"").decode("iso-8859-1"),
        "SCRIPT_NAME": root,
        "wsgi.url_scheme": scope.get("scheme") or "http",
    }
    server = scope.get("server")
    if server:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server[0], str(server[1])
    else:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = "unknown", "0"
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1")
        if "_" in name:
            continue  # as Django: no spoofing through "_" vs "-"
        if name == "content-length":
            meta = "CONTENT_LENGTH"
        elif name == "content-type":
            meta = "CONTENT_TYPE"
        else:
            meta = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        environ[meta] = environ[meta] + "," + value if meta in environ else value
    return environ


def _subscriber_down(face) -> bool:
    sub = face.engine.subscriber
    return sub is not None and sub.state == DOWN


class AsgiResponseFront(ResponseFront):
    """The ASGI adapter of the same front, around a Django ASGI application.

    The decision is ResponseFront's (recognise, from_l1, from_l2, finish): the same keys,
    headers, twins, gates and counters. An L1 hit is answered in the caller's task, no thread:
    L1.aget awaits nothing on a plain hit, and while an invalidation message is pending it
    yields to the loop instead of sleeping in it (L1.get would hold the loop up to 10 ms). On an L1 miss the L2 read is one GET on redis.asyncio
    (caching/aio.py, the engine's breaker): a plain fresh hit is answered as the WSGI front
    does (HIT-L2, L1 backfilled); anything else goes to Django, whose middleware fetches
    (caching.afetch). Unlike the WSGI front this read takes no lease and is not handed on
    (afetch has no early-read parameter): an ASGI miss costs one Redis round trip more
    (3, not 2). Scopes other than HTTP go to the wrapped application (lifespan, websocket)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        environ = scope_environ(scope)
        hit = await self._ahit(environ, started)
        if hit is None:
            self.passed += 1
            return await self.app(scope, receive, send)
        status_code, headers = self.finish(hit)
        await send({"type": "http.response.start", "status": status_code,
                    "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]})
        await send({"type": "http.response.body", "body": b"" if status_code == 304 else hit.body})

    async def _ahit(self, environ, started: float) -> FrontHit | None:
        found = self.recognise(environ)
        if found is None:
            return None
        route, key = found
        face = fetcher._face
        if face is None:  # the process's first request: building the engine waits for its subscription
            face = await sync_to_async(fetcher.current, thread_sensitive=False)()
        l1 = face.l1
        hit = self.from_l1(await l1.aget(key) if l1 is not None else None, environ, route, started)
        if hit is not L1_MISS:
            return hit
        if key in face.inflight or face.invalidator.pending_tags or _subscriber_down(face):
            # A thread of this process is fetching it (Django's fetch joins it), or what a read
            # from Redis must set going first (queued invalidations, the subscription's return):
            # Django's fetch does both.
            return None
        guard = face.fill_guard()
        vkey = keys.value_key(face.namespace, key)
        half = aio.l2_for(face.l2)
        try:
            raw = await half.call(half.client.get, vkey)
        except L2Unavailable:
            return None
        # A read without a lease: nothing to give back, never stored for Django's fetch.
        return self.from_l2(EarlyRead(face, key, vkey, "", 0, raw, guard, used=True), environ, route, started)
