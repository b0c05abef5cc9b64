"""Helpers shared by tests that start real processes: the test database's URL for a child
process, a child environment, and a real Celery worker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def database_url(settings_dict: dict | None = None) -> str:
    """A DATABASE_URL reaching the (test) database Django is connected to."""
    if settings_dict is None:
        from django.db import connection

        settings_dict = connection.settings_dict
    auth = f"{settings_dict['USER']}:{settings_dict['PASSWORD']}@" if settings_dict.get("USER") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def child_env(**extra) -> dict:
    """This process's environment for a child on the test database, tasks not eager, no CDN
    backends but those the caller names."""
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_TASK_ALWAYS_EAGER": "false"}
    for name in ("VARNISH_PURGE_URL", "FASTLY_SERVICE_ID", "CLOUDFLARE_ZONE_ID"):
        env.pop(name, None)
    env.update(extra)
    return env


@contextlib.contextmanager
def celery_worker(env: dict, log_path: Path, *, name: str = "test", ready_timeout: float = 40.0):
    """`celery -A newsite worker` (solo pool) with `env`; yields the process once it is ready and
    stops it at the end."""
    log = open(log_path, "w+")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "newsite", "worker", "-P", "solo", "-l", "info",
            "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"{name}-{os.getpid()}@%h",
        ],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            log.seek(0)
            if "ready." in log.read():
                break
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("celery worker exited: " + log.read()[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError("celery worker not ready")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
