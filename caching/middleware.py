"""PublicResponseCacheMiddleware: serves public GET/HEAD responses from the tiers.

It acts in process_view, after URL resolution and before the view, only for views marked with
`caching.http.cache_public`. Put it last in MIDDLEWARE. Cost of a hit: parameter validation, one
key build, one tier lookup (L1: a dict get; L2: one Redis command) and the header writes.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.http.response import ResponseHeaders

import caching
from caching import keys
from caching.breaker import CircuitBreaker
from caching.http import Uncacheable, entry_from_response, policy_of, serve_entry, serve_negative

SAFE = frozenset({"GET", "HEAD"})
# The database is down or unreachable (connection refused, pool timeout): answer 503 fast.
DB_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5

logger = logging.getLogger("caching.middleware")

# After a database failure, requests that would need it fail fast (503, or a stale entry) for
# DB_BREAKER_RESET seconds instead of each waiting for the connect/pool timeout.
DB_BREAKER_RESET = 2.0
_db_breaker: CircuitBreaker | None = None


def db_breaker() -> CircuitBreaker:
    global _db_breaker
    if _db_breaker is None:
        _db_breaker = CircuitBreaker("db", failures=1, reset_after=DB_BREAKER_RESET)
    return _db_breaker


def _connection_lost(exc: BaseException) -> bool:
    """Only a lost or refused connection opens the database breaker, not a deadlock, a lock
    timeout or a cancelled query (also OperationalErrors, but the database is up)."""
    if isinstance(exc, InterfaceError):
        return True
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")


def _own_copy(response: HttpResponse) -> HttpResponse:
    clone = HttpResponse(response.content, status=response.status_code)
    clone.headers = ResponseHeaders(dict(response.headers))
    for name, morsel in response.cookies.items():
        clone.cookies[name] = morsel
    return clone


def database_unavailable() -> JsonResponse:
    response = JsonResponse(
        {"error": "unavailable", "detail": "The database is unavailable; try again shortly."}, status=503
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class PublicResponseCacheMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        """Uncached views (personal, editorial): a database outage is a fast 503, not a 500."""
        if isinstance(exception, DB_UNAVAILABLE):
            if _connection_lost(exception):
                db_breaker().failure(exception)
            logger.warning("database unavailable for %s: %s", request.path, exception)
            return database_unavailable()
        return None

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method not in SAFE:
            return None
        policy = policy_of(view_func)
        if policy is None:
            return None
        params = policy.validated_params(request.GET)
        if params is None:
            return None  # the view answers 400 with its message; nothing is cached
        key = keys.response_key(request.resolver_match.url_name, view_kwargs, params)

        def load():
            breaker = db_breaker()
            if not breaker.allow():
                raise OperationalError("database circuit breaker open")
            try:
                response = view_func(request, *view_args, **view_kwargs)
            except Http404:
                breaker.success()
                return None
            except DB_UNAVAILABLE as exc:
                if _connection_lost(exc):
                    breaker.failure(exc)
                raise
            breaker.success()
            if hasattr(response, "render") and callable(response.render):
                response = response.render()
            if response.status_code == 200:
                return entry_from_response(response, policy)
            if response.status_code == 404:
                return None
            raise Uncacheable(response)

        def tags_of(entry):
            return entry.tags if entry is not None else tuple(policy.negative_tags(view_kwargs))

        try:
            fetched = caching.fetch(key, load, kind=policy.kind, tags=tags_of)
        except Uncacheable as exc:
            # Single-flight followers receive the leader's exception: each gets its own copy.
            return _own_copy(exc.response)
        except DB_UNAVAILABLE as exc:  # no stale entry to serve (the tiers served one if they had it)
            logger.warning("database unavailable for %s: %s", request.path, exc)
            return database_unavailable()
        if fetched.value is None:
            return serve_negative(request, policy, view_kwargs, source=fetched.source, filled_at=fetched.filled_at)
        return serve_entry(request, fetched.value, source=fetched.source, filled_at=fetched.filled_at)
