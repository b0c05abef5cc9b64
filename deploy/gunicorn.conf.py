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
