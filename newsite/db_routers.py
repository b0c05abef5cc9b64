"""PostgreSQL read replicas with read-your-writes (docs/scaling.md).

Enabled by DATABASE_REPLICA_URLS (newsite/settings_scaling.py): settings then list the replica
aliases in DATABASE_READ_REPLICAS, install PrimaryReplicaRouter and ReadYourWritesMiddleware.

Where reads go:
- inside a request opened by ReadYourWritesMiddleware: to a replica (chosen at random per query),
  unless the request is pinned to the primary. A request is pinned from its start when its method
  is unsafe (POST/PUT/PATCH/DELETE read what they are about to change) or when the client carries
  the pin cookie; and from its first write on, whatever the method. The response of a request
  that wrote sets the pin cookie for DATABASE_REPLICA_PIN_SECONDS, so the same client's next
  requests read the primary while the replicas catch up;
- inside an atomic block on the primary: to the primary (one snapshot, row locks);
- anywhere else (Celery tasks, management commands, shells): to the primary. Tasks mostly run
  right after a commit and must not read a replica that has not replayed it.

Writes and migrations always go to the primary. Costs: a contextvar read per query.
"""

from __future__ import annotations

import random
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

PIN_COOKIE = "newsite_primary"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass
class RequestDbState:
    """Per request: may reads use a replica, and did this request write."""

    pinned: bool = False
    wrote: bool = False


# Mutable state in one ContextVar: a write routed in a copied context (sync_to_async) still
# marks the request the middleware sees.
_state: ContextVar[RequestDbState | None] = ContextVar("newsite_db_request_state", default=None)


def replica_aliases() -> list[str]:
    return list(getattr(settings, "DATABASE_READ_REPLICAS", []))


def pin_to_primary() -> None:
    """Send the rest of this request's reads to the primary (e.g. before a read that must see a
    write made by another process). No effect outside a request: those read the primary anyway."""
    state = _state.get()
    if state is not None:
        state.pinned = True


class PrimaryReplicaRouter:
    """Reads to a replica when the request allows it, everything else to the primary."""

    def db_for_read(self, model, **hints):
        state = _state.get()
        if state is None or state.pinned:
            return DEFAULT_DB_ALIAS
        replicas = replica_aliases()
        if not replicas or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        return random.choice(replicas)

    def db_for_write(self, model, **hints):
        state = _state.get()
        if state is not None:
            state.pinned = True
            state.wrote = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Replicas hold the same rows as the primary.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


class ReadYourWritesMiddleware:
    """Opens the request scope the router reads; sets the pin cookie after a write."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        state = RequestDbState(pinned=request.method not in SAFE_METHODS or PIN_COOKIE in request.COOKIES)
        token = _state.set(state)
        try:
            response = self.get_response(request)
        finally:
            _state.reset(token)
        if state.wrote and request.method not in SAFE_METHODS:
            # Only on unsafe methods: a public GET must never carry a Set-Cookie (edge caching).
            response.set_cookie(
                PIN_COOKIE,
                "1",
                max_age=getattr(settings, "DATABASE_REPLICA_PIN_SECONDS", 5),
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response
