"""Reachability checks of /health/: the database, Redis (L2) and the Celery broker.

Each check runs in a small thread pool and is waited for at most CHECK_TIMEOUT seconds, so a
server that accepts the connection and then hangs cannot hold /health/ longer than that; the
checks themselves use short connect/socket timeouts too. Only the failures each client raises
for "unreachable" are caught and reported; anything else is a bug and propagates.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import kombu
import kombu.exceptions
import redis
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connections

from caching import engine

CHECK_TIMEOUT = 1.0
BROKER_TIMEOUT = 0.8

_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """A lazily created pool, re-created after fork (threads do not survive fork)."""
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        with _executor_lock:
            if _executor is None or _executor_pid != os.getpid():
                _executor = ThreadPoolExecutor(max_workers=6, thread_name_prefix="newsite-health")
                _executor_pid = os.getpid()
    return _executor


class CheckFailed(Exception):
    pass


def check_database() -> None:
    """SELECT 1 on the default database (its own connection in this thread, closed after)."""
    conn = connections["default"]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()  # a thread's connection would otherwise stay open (or hold a pool slot)


def check_redis() -> None:
    """PING through django-redis's client (the L2 connection pool, its socket timeouts)."""
    try:
        if not engine.redis_client().ping():
            raise CheckFailed("PING did not answer PONG")
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from exc


def check_broker() -> None:
    """Connect to the Celery broker once (no retries) and release the connection."""
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False) and not url:
        return
    conn = kombu.Connection(
        url,
        connect_timeout=BROKER_TIMEOUT,
        # The app's own transport options first (sentinel:// needs master_name), then the probe's timeouts.
        transport_options={
            **getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
            "socket_timeout": BROKER_TIMEOUT, "socket_connect_timeout": BROKER_TIMEOUT, "max_retries": 0,
        },
    )
    try:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)
    except (kombu.exceptions.OperationalError, OSError, redis.exceptions.ConnectionError) as exc:
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.release()


CHECKS = {"database": check_database, "redis": check_redis, "broker": check_broker}


def run_checks(names=None, timeout: float = CHECK_TIMEOUT) -> dict[str, dict]:
    """{name: {"ok": bool, "ms": float, "error": str?}} for each check, run concurrently; a check
    still running after `timeout` seconds is reported failed ("timed out")."""
    names = list(names or CHECKS)
    pool = _pool()
    started = time.perf_counter()
    futures = {name: pool.submit(_timed, CHECKS[name]) for name in names}
    results = {}
    for name, future in futures.items():
        remaining = max(0.0, timeout - (time.perf_counter() - started))
        try:
            results[name] = future.result(timeout=remaining)
        except FutureTimeout:
            results[name] = {"ok": False, "ms": round(timeout * 1000, 1), "error": f"timed out after {timeout:.1f}s"}
    return results


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except CheckFailed as exc:
        return {"ok": False, "ms": round((time.perf_counter() - started) * 1000, 1), "error": str(exc)[:300]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
