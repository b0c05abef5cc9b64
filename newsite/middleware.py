"""newsite's last middleware: caching's public-response middleware, guarded against a database
outage (SPEC section 5, "Database down -> cached entries are served stale; the rest get 503
with Retry-After, fast").

- Public views (caching.http.cache_public): a miss runs the view behind the database breaker;
  when the database is unreachable and no tier holds an entry to serve, the answer is a 503.
- A public miss is also charged to the client's "public_miss" budget (newsite/throttle.py)
  before the view runs: over it, the tiers answer with a stale entry when they hold one, else
  the client gets a 429 with Retry-After. The refusal is the client's own (caching's
  CallersOwnRefusal): a single-flight follower of a refused leader loads for itself. Hits cost no
  budget.
- Every other view (personal, editorial, the admin) runs behind the same breaker: while it is
  open, or its half-open probe finds the server unreachable, the answer is a 503 at once (not
  after the pool's DB_POOL_TIMEOUT wait); a database error in the view is a 503, not a 500.
  Views marked @database_free (ops pages, the API docs) are never refused.

The breaker, its probe and the psycopg pool handling are newsite/db_breaker.py.
"""

from __future__ import annotations

import logging

from django.http import Http404, JsonResponse

from caching.middleware import PublicResponseCacheMiddleware, unavailable_response
from newsite import throttle
from newsite.db_breaker import (
    DB_UNAVAILABLE,
    breaker_refusal,
    connection_lost,
    database_breaker,
    database_lost,
)

RETRY_AFTER_SECONDS = 5
QUERY_CANCELED = "57014"  # statement_timeout

logger = logging.getLogger("newsite.middleware")


def database_unavailable() -> JsonResponse:
    return unavailable_response(
        "unavailable", "The database is unavailable; try again shortly.", retry_after=RETRY_AFTER_SECONDS
    )


def _over_budget(request) -> throttle.OverBudget | None:
    """A public miss charged to the client's budget (newsite/throttle.py): the refusal, or None."""
    client, retry_after = throttle.charge(request, throttle.PUBLIC_MISS)
    return None if retry_after is None else throttle.OverBudget(client, retry_after)


def _too_many(exc: throttle.OverBudget):
    return throttle.too_many_requests(
        exc.retry_after, "Too many uncached reads from this client; try again after Retry-After seconds."
    )


class ResponseCacheMiddleware(PublicResponseCacheMiddleware):
    def process_view(self, request, view_func, view_args, view_kwargs):
        response = super().process_view(request, view_func, view_args, view_kwargs)
        if response is not None or getattr(view_func, "database_free", False):
            return response
        # The view runs outside the tiers (personal, editorial, admin; a public view's write or
        # bad parameter): behind the breaker too.
        refused = breaker_refusal()
        if refused is not None:
            logger.warning("database unavailable for %s: %s", request.path, refused)
            return database_unavailable()
        return None

    def run_view(self, request, view_func, view_args, view_kwargs):
        refused = breaker_refusal() or _over_budget(request)
        if refused is not None:
            try:
                raise refused
            finally:
                # No reference cycle (exception -> traceback -> this frame -> exception): a 503
                # of an outage then leaves no garbage for a full collection (caching.fetcher's
                # fetch_slow says why that matters).
                del refused
        breaker = database_breaker()
        try:
            response = super().run_view(request, view_func, view_args, view_kwargs)
        except Http404:
            breaker.success()
            raise
        except DB_UNAVAILABLE as exc:
            if connection_lost(exc):
                database_lost(exc)
            raise
        breaker.success()
        return response

    def respond(self, request, *args):
        try:
            return super().respond(request, *args)
        except throttle.OverBudget as exc:  # no stale entry to serve
            return _too_many(exc)
        except DB_UNAVAILABLE as exc:  # no stale entry to serve (the tiers served one if they had it)
            # A public read refused during an outage is not news: the breaker logged the outage
            # (event=breaker_open / breaker_closed) and the access log has the 503. At 400 such
            # reads a second, a line each would be a flood.
            logger.debug("database unavailable for %s: %s", request.path, exc)
            if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:
                return unavailable_response(  # a statement past its timeout (articles.selectors.search)
                    "timeout", "The query took too long; try a narrower one or again later.",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            return database_unavailable()

    def process_exception(self, request, exception):
        """Uncached views (personal, editorial): a database outage is a fast 503, not a 500."""
        if isinstance(exception, DB_UNAVAILABLE):
            if connection_lost(exception):
                database_lost(exception)
            logger.warning("database unavailable for %s: %s", request.path, exception)
            return database_unavailable()
        return super().process_exception(request, exception)
