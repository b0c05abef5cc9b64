"""A database outage's 503 path, in this process (issue 15: what made the slowest 503s slow):
no reference cycle through the request's frames (one per 503 kept every frame of the request
alive until a full collection, and full collections hold the GIL); the pool made after a lost
connection is opened by the breaker's probe, not by a request that passed the breaker just
before it opened; the second gc.freeze() of newsite/wsgi.py, after a worker's first requests."""

from __future__ import annotations

import gc
import threading
import types

import pytest
from django.db import OperationalError, connections
from psycopg_pool import PoolClosed

from newsite.db_breaker import database_breaker, database_lost, probe_database
from newsite.wsgi import FreezeAfterWarmup

pytestmark = pytest.mark.django_db

# The functions of the 503 path whose frames a cycle kept (the request's own stack).
PATH = {"run_view", "respond", "fetch_slow", "_fetch", "_load_and_fill", "run_loader", "load", "process_view"}


def test_a_refused_read_leaves_no_cycle_through_its_frames(client):
    breaker = database_breaker()
    breaker.failure(OperationalError("outage (test)"))  # open: refused reads never touch the database
    try:
        assert client.get("/api/articles/999000/").status_code == 503  # warm: imports, lazy objects
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage
        try:
            for i in range(5):
                refused = client.get(f"/api/articles/{999001 + i}/")
                assert refused.status_code == 503 and refused["Retry-After"], refused.content
            gc.collect()
            kept = [o for o in gc.garbage if isinstance(o, OperationalError)
                    or (isinstance(o, types.FrameType) and o.f_code.co_name in PATH)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert kept == [], [type(o).__name__ if not isinstance(o, types.FrameType) else o.f_code.co_name
                            for o in kept][:20]
    finally:
        breaker.success()


@pytest.mark.django_db(transaction=True)
def test_the_new_pool_is_opened_by_the_probe_not_by_a_request():
    if connections["default"].pool is None:
        pytest.skip("no connection pool (not PostgreSQL)")
    breaker = database_breaker()
    lost = OperationalError("server closed the connection unexpectedly (test)")
    try:
        database_lost(lost)  # what a lost connection does: the breaker opens, the pool is replaced
        assert breaker.state == "open"
        replacement = connections["default"].pool
        errors = []

        def straggler():  # passed the breaker before it opened: its first query connects
            try:
                connections["default"].ensure_connection()
            except OperationalError as exc:
                errors.append(exc)
            finally:
                connections["default"].close()

        thread = threading.Thread(target=straggler)
        thread.start()
        thread.join(10)
        assert len(errors) == 1 and isinstance(errors[0].__cause__, PoolClosed), errors
        assert replacement.closed  # never opened: no worker threads, no reconnect attempts
        assert probe_database() is None  # the server answers: the probe opens it and connects
        assert not replacement.closed and connections["default"].pool is replacement
    finally:
        breaker.success()  # restore_pools: open() and DB_POOL_TIMEOUT as configured
    assert connections["default"].pool.timeout == connections.settings["default"]["OPTIONS"]["pool"]["timeout"]
    assert "open" not in vars(connections["default"].pool)


def test_the_second_freeze_comes_once_after_the_warmup_requests():
    calls = []

    def app(environ, start_response):
        calls.append(gc.get_freeze_count())
        return [b""]

    wrapped = FreezeAfterWarmup(app, 3)
    gc.unfreeze()
    try:
        kept = [object() for _ in range(3)] + [[i] for i in range(10)]  # tracked objects to freeze
        for _ in range(2):
            wrapped({}, None)
        assert gc.get_freeze_count() == 0
        wrapped({}, None)  # the third request: frozen before it runs
        assert calls[:2] == [0, 0] and calls[2] > 0 and gc.get_freeze_count() > 0
        gc.unfreeze()
        for _ in range(5):
            wrapped({}, None)
        assert gc.get_freeze_count() == 0  # once only
        assert len(kept) == 13
    finally:
        gc.freeze()  # the process had its import frozen (newsite.wsgi): keep it so
