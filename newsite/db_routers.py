"""PostgreSQL read replicas with read-your-writes (docs/scaling.md).

Enabled by DATABASE_REPLICA_URLS (newsite/settings_scaling.py): settings then list the replica
aliases in DATABASE_READ_REPLICAS, install PrimaryReplicaRouter and ReadYourWritesMiddleware.

Where reads go:
- inside a request opened by ReadYourWritesMiddleware: to one replica (chosen at random at the
  request's first read, then kept for the request), unless the request is pinned to the
  primary. A request is pinned from its start when its method is unsafe (POST/PUT/PATCH/DELETE
  read what they are about to change) or when the client carries the pin cookie; and from its
  first write on, whatever the method. The response of a request
  that wrote sets the pin cookie for DATABASE_REPLICA_PIN_SECONDS, so the same client's next
  requests read the primary while the replicas catch up;
- inside an atomic block on the primary: to the primary (one snapshot, row locks);
- anywhere else (Celery tasks, management commands, shells): to the primary. Tasks mostly run
  right after a commit and must not read a replica that has not replayed it.

Writes and migrations always go to the primary. Costs: a contextvar read per query.

Fills fenced by the WAL (caching/fence.py, docs/scaling.md): `WalFence` gives the caching
library the primary's WAL position after each committed write (pg_current_wal_insert_lsn(), one
query per invalidation), and the router reads the chosen replica's replay position once per request,
before the request's first query on it (pg_last_wal_replay_lsn(): a lower bound of what every
later read of the request sees), and notes it for the load in progress. A cache fill whose
replica had not replayed the newest invalidation of one of its tags is then not stored (and is
re-read from the primary). A replica that did not answer, or whose replay position is below the
newest write position this process knew DATABASE_REPLICA_MAX_LAG seconds ago, is skipped: the
request reads the primary (newsite_cache_replica_fallbacks_total{reason="unavailable"|"behind"}).
"""

from __future__ import annotations

import logging
import random
import time
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, Error, InterfaceError, OperationalError, connections, transaction

from caching import fence

logger = logging.getLogger(__name__)

PIN_COOKIE = "newsite_primary"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass
class RequestDbState:
    """Per request: may reads use a replica, and did this request write."""

    pinned: bool = False
    wrote: bool = False
    replica: str | None = None  # chosen at the first read (DEFAULT_DB_ALIAS: none was usable)
    position: int | None = None  # its replay position then (None: not a standby, up to date)


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


# A replica that failed is not tried again by this process for this long (seconds).
REPLICA_RETRY_AFTER = 5.0
_down_until: dict[str, float] = {}
_not_standby: set[str] = set()  # aliases found not in recovery (a mirror, a promoted replica)
REPLAY_POSITION_SQL = "select case when pg_is_in_recovery() then pg_last_wal_replay_lsn() - '0/0'::pg_lsn end"
# The primary's WAL insert position as an integer ((X << 32) + Y of 'X/Y'): after a commit it is
# >= the commit record's end even when the commit did not wait for its flush (synchronous_commit
# off), which pg_current_wal_lsn() (the write position) is not. At a page boundary it points past
# the next page's header, which a standby passes with the next record (any WAL, within seconds);
# meanwhile fills of those tags are re-read from the primary: stricter, never laxer.
WRITE_POSITION_SQL = "select pg_current_wal_insert_lsn() - '0/0'::pg_lsn"


def _scalar(alias: str, sql: str):
    """One value of one query on `alias`, in a savepoint when the connection is inside an atomic
    block (a failed query then leaves the caller's transaction usable). Raises django.db.Error
    (DatabaseError, or InterfaceError for a connection that is gone)."""
    connection = connections[alias]
    if connection.in_atomic_block:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def replay_position(alias: str) -> int | None:
    """The replay position of replica `alias` now (None: it is not a standby, so it has every
    commit). Raises django.db.Error."""
    if alias in _not_standby:
        return None
    position = _scalar(alias, REPLAY_POSITION_SQL)
    if position is None:
        _not_standby.add(alias)
        return None
    return int(position)


def choose_replica(state: RequestDbState) -> str:
    """The replica this request reads (DEFAULT_DB_ALIAS when none is usable), with its replay
    position read now, before any data query of the request on it: one query per request that
    reads a replica (a cache hit reads none)."""
    now = time.monotonic()
    replicas = [a for a in replica_aliases() if _down_until.get(a, 0.0) <= now]
    alias, position = DEFAULT_DB_ALIAS, None
    if not replicas:
        fence.count_fallback("unavailable")
    else:
        alias = random.choice(replicas)
        try:
            position = replay_position(alias)
        except Error as exc:
            _down_until[alias] = now + REPLICA_RETRY_AFTER
            logger.warning("replica %s did not answer (%s): reading the primary for %.0f s",
                           alias, exc, REPLICA_RETRY_AFTER)
            fence.count_fallback("unavailable")
            alias = DEFAULT_DB_ALIAS
        else:
            bound = fence.written_before(getattr(settings, "DATABASE_REPLICA_MAX_LAG", 30.0))
            if position is not None and bound is not None and position < bound:
                fence.count_fallback("behind")
                alias, position = DEFAULT_DB_ALIAS, None
    state.replica, state.position = alias, position
    return alias


class PrimaryReplicaRouter:
    """Reads to a replica when the request allows it, everything else to the primary."""

    def db_for_read(self, model, **hints):
        state = _state.get()
        if state is None or state.pinned or fence.reads_primary():
            return DEFAULT_DB_ALIAS
        if not replica_aliases() or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        alias = state.replica or choose_replica(state)
        if state.position is not None:
            fence.note_replica_read(state.position)
        return alias

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


# SQLSTATEs of a query a standby cancelled for a conflict with recovery ("canceling statement
# due to conflict with recovery": 40001 serialization_failure; 40P01 for a buffer deadlock;
# 57P04 database_dropped) - the same query on the primary succeeds.
RECOVERY_CONFLICT_STATES = frozenset({"40001", "40P01", "57P04"})
# A replica that went away: connection_exception (class 08), admin/crash shutdown, starting up.
GONE_STATES = frozenset({"57P01", "57P02", "57P03"})


def replica_gone(exc: BaseException) -> bool:
    """A lost or refused connection (InterfaceError, an OperationalError with a class 08 or
    shutdown SQLSTATE, or none: the client library's own "connection is closed")."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    state = getattr(exc.__cause__, "sqlstate", None)
    return state is None or state.startswith("08") or state in GONE_STATES


class WalFence:
    """The caching library's REPLICA_FENCE (caching/fence.py) for PostgreSQL: positions are WAL
    positions as integers."""

    def retry_on_primary(self, exc: BaseException) -> bool:
        """Is a load that read a replica and raised `exc` to run again on the primary? Only for a
        recovery conflict or a replica that went away (then not read again by this process for
        REPLICA_RETRY_AFTER, nor by the rest of this request). Any other error (a statement
        timeout, a programming error) is the query's own: raised, not run twice."""
        if getattr(exc.__cause__, "sqlstate", None) in RECOVERY_CONFLICT_STATES:
            return True
        if not replica_gone(exc):
            return False
        state = _state.get()
        if state is not None and state.replica not in (None, DEFAULT_DB_ALIAS):
            _down_until[state.replica] = time.monotonic() + REPLICA_RETRY_AFTER
            logger.warning("replica %s went away (%s): reading the primary for %.0f s",
                           state.replica, exc, REPLICA_RETRY_AFTER)
            state.replica, state.position = DEFAULT_DB_ALIAS, None
        return True

    def write_position(self) -> int | None:
        """The primary's WAL position now (called after a commit: >= the commit's), or None
        when the primary did not answer (the library then fences the tags until their marks
        expire)."""
        try:
            return int(_scalar(DEFAULT_DB_ALIAS, WRITE_POSITION_SQL))
        except Error as exc:  # InterfaceError too: this runs in on_commit callbacks, after the commit
            logger.warning("no WAL position for an invalidation (%s): its tags are fenced until their "
                           "marks expire", exc)
            return None


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
