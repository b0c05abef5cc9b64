"""PublicResponseCacheMiddleware: serves public GET/HEAD responses from the tiers.

It acts in process_view, after URL resolution and before the view, only for views marked with
`caching.http.cache_public`. Put it last in MIDDLEWARE. Cost of a hit: parameter validation, one
key build, one tier lookup (L1: a dict get; L2: one Redis command) and the header writes.

The view's own query parameters are parsed here once, for every method, and kept on the request
(`caching.http.request_params`), so the view answers the same with the cache on, off or skipped.

Two hooks for a project that guards the source its views read (e.g. a database breaker):
`run_view` (how a miss runs the view) and `respond` (the whole fetch-and-serve step, to turn a
source outage into a response). By default the view's exceptions propagate.

Sync and async capable (Django's sync_capable/async_capable): under ASGI, Django calls it
without sync_to_async. Its async process_view answers a public GET/HEAD with valid parameters
through `arespond`: `caching.afetch` (an L1 hit in the event loop, L2 on redis.asyncio, a miss's
view and fill in one thread hop, as afetch does), then the same response building as `respond`.
Every other request goes to `process_view` (a subclass's own, in a thread: it is sync). An
exception of the fetch (the view's, a project's refusal) is handed to `respond` - re-raised from
inside it - so a subclass's translation of it into a response applies on both paths, without a
thread.
"""

from __future__ import annotations

import contextvars

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import Http404, HttpResponse, JsonResponse
from django.http.response import ResponseHeaders

import caching
from caching import conf, keys, lifetime
from caching.early_read import EarlyRead
from caching.http import (
    CACHE_CONTROL,
    TAGS,
    ResponsePolicy,
    Uncacheable,
    entry_from_response,
    not_found_entry,
    policy_of,
    read_params,
    serve_entry,
    serve_negative,
    unshared_cache_control,
)

SAFE = frozenset({"GET", "HEAD"})
# Set by the edge (deploy/varnish/default.vcl) on its fetches: they start at L2, because a
# purge may have arrived before this process's L1 heard of the invalidation.
EDGE_FETCH_HEADER = "HTTP_X_EDGE_FETCH"
BUSY_RETRY_AFTER_SECONDS = 1
# arespond -> respond: the async fetch's exception, raised again inside respond (so that a
# subclass's `try: super().respond(...) except ...` answers it as it does on the sync path).
_RAISE_IN_RESPOND: contextvars.ContextVar = contextvars.ContextVar("caching_raise_in_respond", default=None)


def unavailable_response(error: str, detail: str, *, retry_after: int) -> JsonResponse:
    """A JSON 503 with Retry-After that no cache keeps."""
    response = JsonResponse({"error": error, "detail": detail}, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


def busy_response() -> JsonResponse:
    """503 for a cold key whose loader has been running elsewhere for longer than LEASE_WAIT."""
    return unavailable_response(
        "busy", "This page is being rebuilt; try again in a moment.", retry_after=BUSY_RETRY_AFTER_SECONDS
    )


def _own_copy(response: HttpResponse) -> HttpResponse:
    clone = HttpResponse(response.content, status=response.status_code)
    clone.headers = ResponseHeaders(dict(response.headers))
    for name, morsel in response.cookies.items():
        clone.cookies[name] = morsel
    return clone


def _foreign_params(request, policy: ResponsePolicy) -> bool:
    """Whether the query string carries a parameter that is not part of the key."""
    own = {param.name for param in policy.params}
    return any(name not in own for name in request.GET)


def _no_store(response: HttpResponse) -> HttpResponse:
    """Nothing that answered outside the key (an error, a 404 a foreign parameter may have
    caused) may be kept by a shared cache either."""
    response["Cache-Control"] = "private, no-store"
    for header in ("Surrogate-Key", "Cache-Tag"):
        if header in response:
            del response[header]
    return response


class PublicResponseCacheMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
            self.process_view = self.aprocess_view  # what Django's handler calls in async mode

    def __call__(self, request):
        return self.get_response(request)  # async mode: the inner handler's coroutine, awaited by Django

    def process_view(self, request, view_func, view_args, view_kwargs):
        policy = policy_of(view_func)
        if policy is None:
            return None
        params = read_params(request, policy)
        if params is None or request.method not in SAFE:
            return None  # a bad value: the view answers 400 with its message; nothing is cached
        return self.respond(request, policy, params, view_func, view_args, view_kwargs)

    async def aprocess_view(self, request, view_func, view_args, view_kwargs):
        """process_view in async mode: public GET/HEAD through arespond, the rest through the
        class's process_view (in a thread, only when a subclass overrides it)."""
        policy = policy_of(view_func)
        if policy is not None and request.method in SAFE:
            params = read_params(request, policy)
            if params is not None:
                return await self.arespond(request, policy, params, view_func, view_args, view_kwargs)
        sync_view_hook = type(self).process_view
        if sync_view_hook is PublicResponseCacheMiddleware.process_view:
            return None  # what it would answer: nothing to cache here
        return await sync_to_async(sync_view_hook, thread_sensitive=True)(self, request, view_func, view_args, view_kwargs)

    def run_view(self, request, view_func, view_args, view_kwargs) -> HttpResponse:
        """Run the view for a miss (inside the tiers' lease)."""
        return view_func(request, *view_args, **view_kwargs)

    def respond(self, request, policy: ResponsePolicy, params: dict, view_func, view_args, view_kwargs) -> HttpResponse:
        """The response from the tiers, the view running on a miss. Exceptions of the view that
        the tiers could not answer with a stale entry propagate."""
        pending = _RAISE_IN_RESPOND.get()
        if pending is not None:
            raise pending  # arespond's fetch raised it: the subclass's respond answers it
        key, load, tags_of = self._fetch_args(request, policy, params, view_func, view_args, view_kwargs)
        try:
            fetched = caching.fetch(key, load, kind=policy.kind, tags=tags_of,
                                    bypass_l1=EDGE_FETCH_HEADER in request.META,
                                    early_read=EarlyRead.stored(request.META))  # the WSGI front's L2 read
        except Uncacheable as exc:
            # Single-flight followers receive the leader's exception: each gets its own copy.
            return _own_copy(exc.response)
        except caching.LeaseTimeout:
            return busy_response()
        return self._served(request, policy, view_kwargs, fetched)

    async def arespond(self, request, policy: ResponsePolicy, params: dict, view_func, view_args,
                       view_kwargs) -> HttpResponse:
        """respond() on caching.afetch: the same response; the fetch's other exceptions go
        through respond (a subclass's handling of them)."""
        key, load, tags_of = self._fetch_args(request, policy, params, view_func, view_args, view_kwargs)
        try:
            try:
                fetched = await caching.afetch(key, load, kind=policy.kind, tags=tags_of,
                                               bypass_l1=EDGE_FETCH_HEADER in request.META)
            except Uncacheable as exc:
                return _own_copy(exc.response)
            except caching.LeaseTimeout:
                return busy_response()
        except Exception as exc:
            if type(self).respond is PublicResponseCacheMiddleware.respond:
                raise
            token = _RAISE_IN_RESPOND.set(exc)
            try:
                return self.respond(request, policy, params, view_func, view_args, view_kwargs)
            finally:
                _RAISE_IN_RESPOND.reset(token)
        return self._served(request, policy, view_kwargs, fetched)

    def _fetch_args(self, request, policy: ResponsePolicy, params: dict, view_func, view_args, view_kwargs):
        """(key, loader, tags) of the fetch of a public request (both paths)."""
        key = keys.response_key(request.resolver_match.url_name, view_kwargs, params)

        def load():
            try:
                response = self.run_view(request, view_func, view_args, view_kwargs)
            except Http404:
                response = None
            if response is not None and hasattr(response, "render") and callable(response.render):
                response = response.render()
            if response is not None and response.status_code == 200:
                return entry_from_response(response, policy)
            if response is None or response.status_code == 404:
                if not _foreign_params(request, policy):
                    # Until a known moment (a scheduled item): an entry capped at it; else a negative.
                    return None if lifetime.current_until() is None else not_found_entry(request, policy, view_kwargs)
                # A parameter outside the key may be what made it a 404: answer it, store nothing.
                raise Uncacheable(_no_store(response or policy.not_found(request)))
            raise Uncacheable(_no_store(response))

        def tags_of(entry):
            return entry[TAGS] if entry is not None else tuple(policy.negative_tags(view_kwargs))

        return key, load, tags_of

    @staticmethod
    def _served(request, policy: ResponsePolicy, view_kwargs, fetched) -> HttpResponse:
        """The response of a fetched entry (both paths)."""
        if fetched.value is None:
            response = serve_negative(request, policy, view_kwargs, source=fetched.source, filled_at=fetched.filled_at)
        else:
            response = serve_entry(request, fetched.value, source=fetched.source, filled_at=fetched.filled_at)
        if not fetched.shared:
            # First sight of a key made of user input (a search, a 404): L2 did not admit it,
            # so neither may the edge: one-off URLs leave no object in Varnish or a CDN.
            if fetched.value is None:
                response["Cache-Control"] = conf.get().kind(conf.NEGATIVE_KIND).unshared_cache_control
            else:  # the entry's own max-age: capped when it is true until a known moment only
                response["Cache-Control"] = unshared_cache_control(fetched.value[CACHE_CONTROL])
        if fetched.superseded:
            # The tiers refused this value (a write overtook its load): it may answer this
            # request, which began before the write, but no shared cache may keep it.
            response["Cache-Control"] = "no-store"
        return response

    def process_exception(self, request, exception):
        """A LeaseTimeout raised by a view's own caching.fetch() call: a fast 503, not a 500."""
        if isinstance(exception, caching.LeaseTimeout):
            return busy_response()
        return None
