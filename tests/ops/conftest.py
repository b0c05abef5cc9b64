"""Fixtures of the ops tests: a private redis-server and a gunicorn with two workers, both on
free 127.0.0.1 ports and stopped by their fixtures."""

from __future__ import annotations

import pytest

from tests import support
from tests.support import Gunicorn, app_env, free_port

private_redis = support.private_redis  # the fixture: a started redis-server of the test's own


@pytest.fixture
def gunicorn_two_workers(tmp_path):
    """gunicorn (deploy/gunicorn.conf.py, 2 sync workers) on the test database, with a fresh
    PROMETHEUS_MULTIPROC_DIR holding a stale file that on_starting must remove."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("gunicorn needs a database another process can open: run on PostgreSQL (make test)")
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file of a previous run")
    env = app_env(DB_POOL_MIN="1", DB_POOL_MAX="2")
    server = Gunicorn(port=free_port(), workdir=tmp_path, env=env, workers=2, metrics_dir=metrics_dir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
