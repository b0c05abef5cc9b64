"""The fault suite's stack (issue 15), short enough for `make test`:

  cache    a private redis-server (L2 and the L1 broadcast); stop()/start() keeps its port, and
           it saves nothing, so a restart is a Redis restarted empty
  broker   a second private redis-server, the Celery broker (so it can go down alone)
  app      the web server `make up` starts (deploy/scripts/run-web.sh: granian), 2 workers, on
           the test database, with NO CDN settings (the rows it writes must reach the worker's
           Varnish all the same)
  edge     varnishd with deploy/varnish/default.vcl in front of `app`
  worker   `celery -A newsite worker` draining the outbox into `edge` (VARNISH_PURGE_URL)

Faults are real: processes stopped, killed (SIGKILL), restarted; nothing of ours is patched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support import REPO, RedisServer, WebServer, app_env, celery_worker, free_port, wait_until

HTTP_TIMEOUT = 15


def title_of(response: requests.Response) -> str | None:
    try:
        return response.json().get("title")
    except ValueError:
        return None


@dataclass
class Stack:
    workdir: Path
    cache: RedisServer
    broker: RedisServer
    app: WebServer
    edge: object  # tests.cdn.servers.Varnish
    env: dict
    worker: subprocess.Popen | None = None
    _worker_cm: object = None
    _worker_runs: int = 0

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.broker.port}/0"

    def worker_env(self, purge_url: str | None = None) -> dict:
        return {**self.env, "VARNISH_PURGE_URL": purge_url or (self.edge.url + "/")}

    def start_worker(self, purge_url: str | None = None) -> subprocess.Popen:
        self._worker_runs += 1
        self._worker_cm = celery_worker(self.worker_env(purge_url),
                                        self.workdir / f"celery-{self._worker_runs}.log", name="faults")
        self.worker = self._worker_cm.__enter__()
        return self.worker

    def stop_worker(self) -> None:
        if self._worker_cm is not None:
            self._worker_cm.__exit__(None, None, None)
        self._worker_cm = self.worker = None

    def kill_worker(self) -> None:
        """kill -9 the Celery worker (no graceful shutdown, no ack of what it was doing)."""
        os.kill(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)
        self.stop_worker()

    def app_worker_pids(self) -> list[int]:
        return self.app.worker_pids()

    def every_worker_subscribed(self) -> bool:
        """Whether each app worker reports its L1 invalidation subscription up (/health/cache/,
        asked in concurrent bursts until every worker pid answered)."""
        from concurrent.futures import ThreadPoolExecutor

        pids = set(self.app_worker_pids())
        seen: dict[int, bool] = {}
        for _ in range(20):
            with ThreadPoolExecutor(max_workers=8) as pool:
                for doc in pool.map(lambda _: requests.get(self.app.url + "/health/cache/", timeout=HTTP_TIMEOUT).json(),
                                    range(8)):
                    seen[doc["pid"]] = bool(doc["subscription"]["subscribed"])
            if pids <= set(seen):
                break
        return pids <= set(seen) and all(seen[pid] for pid in pids)

    def redrive(self) -> None:
        """What the beat does every 30 s: send cdn.purge_outbox_redrive to the broker."""
        code = "import django; django.setup(); from cdn.tasks import purge_outbox_redrive as t; t.delay()"
        subprocess.run([sys.executable, "-c", code], cwd=REPO, env=self.env, check=True, timeout=60,
                       capture_output=True)


@contextlib.contextmanager
def running_stack(workdir: Path):
    from django.conf import settings

    from tests.cdn.servers import Varnish

    prefix = f"{settings.CACHES['default'].get('KEY_PREFIX') or 'newsite'}-faults{os.getpid()}"
    with contextlib.ExitStack() as stack:
        (workdir / "cache").mkdir()
        (workdir / "broker").mkdir()
        cache, broker = RedisServer(workdir / "cache"), RedisServer(workdir / "broker")
        cache.start()
        stack.callback(cache.stop)
        broker.start()
        stack.callback(broker.stop)
        env = app_env(REDIS_URL=cache.url, CACHE_KEY_PREFIX=prefix, CELERY_BROKER_URL=f"redis://127.0.0.1:{broker.port}/0",
                      CELERY_TASK_ALWAYS_EAGER="false", DB_POOL_MIN="1", DB_POOL_MAX="4",
                      CDN_OUTBOX_BACKOFF_BASE="0.5")
        for name in ("VARNISH_PURGE_URL", "FASTLY_SERVICE_ID", "CLOUDFLARE_ZONE_ID"):
            env.pop(name, None)
        app_port = free_port()
        edge = Varnish(app_port)
        stack.callback(edge.close)
        app = WebServer(port=app_port, workdir=workdir, env=env, workers=2)
        stack.callback(app.stop)
        edge.start()
        app.wait_ready()
        faults = Stack(workdir=workdir, cache=cache, broker=broker, app=app, edge=edge, env=env)
        faults.start_worker()
        stack.callback(faults.stop_worker)
        yield faults


# --- Load: readers during a fault ---------------------------------------------------------------


@dataclass
class Load:
    """Reader threads GETting `urls` in a loop until stop(); counts statuses (and transport
    errors as "error:<name>")."""

    urls: list[str]
    threads: int = 4
    statuses: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list = field(default_factory=list)

    def start(self) -> Load:
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, offset: int) -> None:
        session = requests.Session()
        i = offset
        while not self._stop.is_set():
            url = self.urls[i % len(self.urls)]
            i += 1
            try:
                key = session.get(url, timeout=HTTP_TIMEOUT).status_code
            except requests.RequestException as exc:
                key = f"error:{type(exc).__name__}"
                session = requests.Session()
            with self._lock:
                self.statuses[key] += 1

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.statuses)

    def stop(self) -> Counter:
        self._stop.set()
        for thread in self._threads:
            thread.join(HTTP_TIMEOUT + 5)
        return self.snapshot()


def server_errors(statuses: Counter) -> dict:
    """5xx other than 503 (503 + Retry-After is the designed answer to a database outage)."""
    return {k: v for k, v in statuses.items() if isinstance(k, int) and k >= 500 and k != 503}


# --- A purge target that accepts and never answers (a worker stuck mid-drain) --------------------


class Blackhole:
    """Accepts connections on a free port and reads, never answers; `connections` counts them."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._socks.append(sock)
            self.connections += 1

    def close(self):
        self.listener.close()
        for sock in self._socks:
            sock.close()


def wait_done(row_ids, timeout: float = 60.0):
    """Wait until every outbox row of `row_ids` is done; returns the rows."""
    from cdn.models import PurgeOutbox

    def done():
        rows = list(PurgeOutbox.objects.filter(pk__in=list(row_ids)))
        return rows if rows and all(r.status == "done" for r in rows) else None

    rows = wait_until(done, timeout, 0.2)
    return rows or list(PurgeOutbox.objects.filter(pk__in=list(row_ids)))


def sleep_until(predicate, timeout: float, what: str):
    if not wait_until(predicate, timeout, 0.1):
        raise AssertionError(f"not reached within {timeout}s: {what}")
    time.sleep(0)
