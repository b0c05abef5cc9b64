"""gunicorn settings for newsite (`gunicorn -c deploy/gunicorn.conf.py newsite.wsgi`).

Overridable by environment: GUNICORN_BIND, GUNICORN_WORKERS, GUNICORN_THREADS.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
# Nothing connects at import (lazy clients), so preloading the app before fork is safe.
preload_app = True
max_requests = 10_000
max_requests_jitter = 1_000
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
# The app's own log lines (stderr) go to the error log too: under --daemon (make up) they would
# go nowhere otherwise.
capture_output = True

# --- Prometheus multiprocess mode (docs/observability.md) -----------------------------------
# Every worker writes its metrics to mmap files in PROMETHEUS_MULTIPROC_DIR and /metrics sums
# them. The variable must be set, and the directory must exist, before the app is imported:
# prometheus-client picks its value class at import and opens a file per metric as soon as one is
# created. With preload_app the app is imported before any server hook runs (on_starting comes
# after), so both happen here, in the config, which gunicorn reads first.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(_REPO, ".run", "prometheus"))
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    """Remove the files of processes that are gone (a previous run): they would otherwise be
    summed into this run's counters. Files of live processes stay: the Celery worker shares the
    directory (make up, systemd, docker-compose) and may be running while gunicorn restarts.
    prometheus-client names every file <kind>_<pid>.db."""
    import shutil

    from newsite.ops.metrics import pid_alive

    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    removed = 0
    for name in os.listdir(path):
        full = os.path.join(path, name)
        stem = name[:-3] if name.endswith(".db") else ""
        pid = stem.rsplit("_", 1)[-1]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)
        removed += 1
    server.log.info("prometheus multiprocess dir %s ready (%d stale files removed)", path, removed)


def child_exit(server, worker):
    """A worker is gone: drop its live gauges (newsite_breaker_open is livemax)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
