"""What a database outage's 503s leave to the garbage collector: no reference cycle through the
request's frames (issue 15: one cycle per 503 kept every frame of the request and its objects
alive until a full collection, and full collections, which hold the GIL, made the slowest 503s),
and the second gc.freeze() of newsite/wsgi.py, after a worker's first requests."""

from __future__ import annotations

import gc
import types

import pytest
from django.db import OperationalError

from newsite.middleware import database_breaker
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
