"""The database breaker of this process and its psycopg pool handling (SPEC section 5: "Database
down -> cached entries are served stale; the rest get 503 with Retry-After, fast").

- database_breaker() is the process's breaker (closed until the first failure); /health/cache/
  and the admin Cache page show database_breaker_snapshot(). breaker_refusal() tells a request
  that needs the database whether it must not try it now; newsite/middleware.py answers those
  with a 503 (or a stale entry). Views marked @database_free (ops pages, the API docs) are never
  refused.
- Only a lost or refused connection opens it (connection_lost), not a deadlock, a lock timeout
  or a cancelled query.
- A lost connection also discards the process's connection pool (discard_connection_pool): the
  requests waiting in its getconn fail at once instead of after DB_POOL_TIMEOUT, and its idle
  connections - all dead after a restart - are never handed out after the server is back (each
  would cost a failed request and another DB_BREAKER_RESET of refusals). The breaker's probe
  opens the new pool once the server accepts connections; a request that passed the breaker
  just before it opened gets its 503 at once rather than opening it.

The breaker is caching.breaker.CircuitBreaker (metric newsite_breaker_open{tier="db"}).
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from django.db import InterfaceError, OperationalError, connections
from psycopg_pool import PoolClosed, PoolTimeout

from caching.breaker import CLOSED, HALF_OPEN, CircuitBreaker

# The database is down or unreachable (connection refused, pool timeout): answer 503 fast.
DB_UNAVAILABLE = (OperationalError, InterfaceError)
# After a database failure, requests that would need it fail fast (503, or a stale entry) for
# DB_BREAKER_RESET seconds instead of each waiting for the connect/pool timeout.
DB_BREAKER_RESET = 2.0
# The half-open probe (one request per process every DB_BREAKER_RESET) has this long in all: a
# bare connection to the server first - a stopped PostgreSQL refuses it at once, where the pool's
# getconn would wait DB_POOL_TIMEOUT (2 s) for a connection its background workers cannot make -
# then, the server accepting, a connection from the pool within what is left. A connection
# slower to make than that is ready for the next probe (the pool goes on making it).
DB_PROBE_TIMEOUT = 0.05
# A pool made after a lost connection (discard_connection_pool) hands out a connection within
# this long, not DB_POOL_TIMEOUT, until the breaker closes: a request that passed the breaker just
# before it opened (at the outage's onset) fails at once instead of after the probe's budget.
# Not 0: psycopg_pool then times out even with a connection idle in the pool.
DB_OUTAGE_POOL_TIMEOUT = 0.01

logger = logging.getLogger(__name__)

_db_breaker: CircuitBreaker | None = None


def database_breaker() -> CircuitBreaker:
    """The database breaker of this process (created on first use)."""
    global _db_breaker
    if _db_breaker is None:
        _db_breaker = CircuitBreaker("db", failures=1, reset_after=DB_BREAKER_RESET, on_close=restore_pools)
    return _db_breaker


def database_free(view):
    """Marks a view that needs no database (metrics, health, the API docs): the database
    breaker never refuses it."""
    view.database_free = True
    return view


def database_known_down() -> bool:
    """The breaker is not closed (a connection was lost or refused lately): the ops pages skip
    their few queries rather than wait the pool's timeout. Never a probe: it changes nothing."""
    return _db_breaker is not None and _db_breaker.state != CLOSED


def breaker_refusal() -> OperationalError | None:
    """Why a request that needs the database must not try it now - the breaker is open, or this
    request is its half-open probe and found the server unreachable or not ready - or None (the
    probe's success closes the breaker)."""
    breaker = database_breaker()
    if not breaker.allow():
        return OperationalError("database circuit breaker open")
    if breaker.state == HALF_OPEN:
        exc = probe_database()
        if exc is not None:
            # Once per probe (every DB_BREAKER_RESET per process), not per refused request.
            logger.warning("%s: the breaker stays open %.0f s more", exc, DB_BREAKER_RESET)
            database_lost(exc)
            return exc
        restore_pools()  # before the close: no request after it meets the outage's pool
        breaker.success()
    return None


def probe_database(alias: str = "default") -> OperationalError | None:
    """The half-open probe, DB_PROBE_TIMEOUT in all: a bare connect (database_reachable), then
    a connection from `alias`'s pool (opened if new) within what is left, given back at once.
    None when the server answered; else the error (a PoolTimeout cause: the pool goes on making
    its connection, so database_lost keeps the pool). No pool: Django's own connect."""
    started = time.monotonic()
    if not database_reachable(alias):
        return OperationalError("database unreachable (breaker probe)")
    wrapper = connections[alias]
    try:
        with wrapper.wrap_database_errors:
            pool = wrapper.pool
            if pool is None:
                wrapper.ensure_connection()
            else:
                _allow_open(pool)
                pool.open()
                left = max(DB_OUTAGE_POOL_TIMEOUT, DB_PROBE_TIMEOUT - (time.monotonic() - started))
                pool.putconn(pool.getconn(timeout=left))
    except DB_UNAVAILABLE as exc:
        return exc
    return None


def database_lost(exc: BaseException) -> None:
    """A connection was lost or refused: open the breaker and discard the pool. A PoolClosed is
    not news: a request that had picked up the pool this process just discarded."""
    if isinstance(exc.__cause__, PoolClosed):
        return
    database_breaker().failure(exc)
    if not isinstance(exc.__cause__, PoolTimeout):  # no connection was lost: the pool is making one
        # The error does not say which alias lost it (a replica, or the primary), and the one
        # breaker already refuses them all: every alias's pool goes.
        for alias in connections.settings:
            discard_connection_pool(alias)


_pool_lock = threading.Lock()
_closing = threading.local()


class _QuietPoolClose(logging.Filter):
    """discard_connection_pool closes without waiting for the pool's threads (one may be in a
    connect attempt, up to DB_CONNECT_TIMEOUT): psycopg_pool's "couldn't stop thread" warnings
    for that close say nothing an operator can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(_closing, "active", False) and str(record.msg).startswith("couldn't stop thread"))


logging.getLogger("psycopg.pool").addFilter(_QuietPoolClose())


def discard_connection_pool(alias: str = "default") -> None:
    """Replace `alias`'s psycopg pool in this process by a new, unopened one made by Django's
    own code (a scratch DatabaseWrapper), then close the old one without waiting: its getconn
    waiters fail at once with PoolClosed (an OperationalError: a 503, or a stale entry), its
    idle connections are closed, those in use are closed when returned. Replaced in one
    assignment, not deleted: Django's DatabaseWrapper.pool reads the shared dict twice. No pool
    (SQLite, no pool option, none made yet): nothing to do."""
    pools = getattr(connections[alias], "_connection_pools", None)
    if not pools or alias not in pools or pools[alias].closed:
        return  # none, or never opened since the last discard: no connection, no waiter to drop
    scratch = connections.create_connection(alias)
    scratch._connection_pools = {}  # shadows the class's shared dict
    replacement = scratch.pool
    replacement.timeout = DB_OUTAGE_POOL_TIMEOUT  # until the breaker closes: restore_pools
    # Opened by the breaker's probe once the server accepts connections, not by a request that
    # passed the breaker just before it opened (Django's connect opens the pool it finds): that
    # request gets PoolClosed at once - no worker threads started (~20-40 ms of GIL hand-offs
    # on a busy worker, the last slow 503 of an outage's onset), no reconnect attempts meanwhile.
    replacement.open = _opened_by_the_probe
    with _pool_lock:
        old, pools[alias] = pools[alias], replacement  # never deleted, so present
    _closing.active = True
    try:
        old.close(timeout=0)
    finally:
        _closing.active = False


def _opened_by_the_probe(*args, **kwargs):
    """A replacement pool's open() until the probe or the breaker's close allows it."""
    raise PoolClosed("database breaker open: this process's new pool opens at the breaker's probe")


def _allow_open(pool) -> None:
    pool.__dict__.pop("open", None)  # ConnectionPool.open again


def restore_pools() -> None:
    """The breaker closed: every alias's pool (database_lost replaced them all) opens when a
    request needs it and waits DB_POOL_TIMEOUT again for a connection."""
    for alias in connections.settings:
        pools = getattr(connections[alias], "_connection_pools", None) or {}
        pool = pools.get(alias)
        if pool is None:
            continue
        _allow_open(pool)
        configured = connections.settings[alias].get("OPTIONS", {}).get("pool")
        if isinstance(configured, dict) and "timeout" in configured:
            pool.timeout = configured["timeout"]


def database_reachable(alias: str = "default", timeout: float = DB_PROBE_TIMEOUT) -> bool:
    """Whether the database server accepts a connection (TCP or its Unix socket) within
    `timeout`. True when that cannot be told (several hosts, another engine): the probe then
    runs the view as before."""
    settings_dict = connections.settings[alias] if alias in connections.settings else {}
    if "postgresql" not in settings_dict.get("ENGINE", ""):
        return True
    host, port = settings_dict.get("HOST") or "", int(settings_dict.get("PORT") or 5432)
    if "," in host:
        return True
    try:
        if not host or host.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(f"{host or '/var/run/postgresql'}/.s.PGSQL.{port}")
        else:
            socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def database_breaker_snapshot() -> dict:
    """State of the database breaker; "closed" when no public miss has created it yet (reading
    it creates nothing, so no metric appears before the first use)."""
    if _db_breaker is None:
        return {"state": "closed", "consecutive_failures": 0, "times_opened": 0}
    return _db_breaker.snapshot()


def connection_lost(exc: BaseException) -> bool:
    """Only a lost or refused connection opens the database breaker, not a deadlock, a lock
    timeout or a cancelled query (also OperationalErrors, but the database is up)."""
    if isinstance(exc, InterfaceError):
        return True
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")
