"""The stack of the freshness tests (issue 14) and the faults they inject.

`stack` (module scope): a private redis-server (cache on db 0, Celery broker on db 1), TCP proxies
in front of it (`proxy` for the readers and the L2-only host, `editor_proxy` for the editor), and
on the test database:

  editor   gunicorn, 1 worker, L1+L2: every write (PATCH with a DRF token) goes through it
  readers  gunicorn, 2 workers, L1+L2: Varnish's backend, and the "L1+L2" tier read directly
  l2only   gunicorn, 1 worker, CACHE_L1_ENABLED=false: the "L2 only" tier
  edge     varnishd with deploy/varnish/default.vcl in front of `readers`
  worker   `celery -A newsite worker` draining the purge outbox into the edge
  beat     with running_stack(beat=True) only: `celery -A newsite beat` beside the worker, both
           restartable (Stack.celery: kill -9 and start again; tests/freshness/test_schedule.py)

The proxy (RedisProxy) is the fault injector, at the network level (no code of ours is patched):
it can delay or hold what Redis sends to the L1 subscribers (pub/sub lag, a stuck subscriber),
and hold a command carrying a given byte string (the writer's invalidation, one key's L2 read).

Everything binds 127.0.0.1 on free ports and is stopped when the module's tests are done.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from tests.support import (
    REPO,
    Gunicorn,
    app_env,
    celery_worker,
    free_port,
    free_ports,
    require_postgresql,
    wait_until,
)

HTTP_TIMEOUT = 30
BURST = 16  # concurrent GETs of a burst: more than enough for every sync worker of a host to serve


# --- A private redis-server (DEBUG allowed, SAVE to its own dir) --------------------------------


class PrivateRedis:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.dir = workdir
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--dbfilename", "dump.rdb",
             "--enable-debug-command", "local", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if not wait_until(self._pong, 10, 0.02):
            self.stop()
            raise RuntimeError("private redis-server did not answer")

    def _pong(self) -> bool:
        try:
            return self.client().ping()
        except redis.exceptions.ConnectionError:
            return False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_connect_timeout=1, socket_timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# --- The fault-injecting Redis proxy -------------------------------------------------------------


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.subscriber = False  # this connection sent a (P/S)SUBSCRIBE: an L1 subscriber
        self.hold_next_reply: bytes | None = None  # the marker whose command's reply to hold

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class RedisProxy:
    """127.0.0.1:port -> the private Redis. Faults (all off by default):

    - `lag`: seconds by which every chunk Redis sends to a subscriber connection is delayed;
    - `freeze()` / `thaw()`: hold every chunk to subscriber connections until thawed;
    - `hold_commands(marker)` / `release_commands()`: a command chunk (from a non-subscriber
      connection) containing `marker` is held before it reaches Redis until released;
      `commands_held` counts those held so far;
    - `hold_replies(marker)` / `release_replies()`: the reply to a command containing `marker`
      is held (the command itself runs at once) until released; `replies_held` counts them;
    - `cut()` / `heal()`: everything either way is dropped (a partition: the client's commands
      never reach Redis, nothing comes back, its timeouts close the connections), until healed.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self._listener.getsockname()[1]
        self._cond = threading.Condition()
        self._conns: list[_Conn] = []
        self._closed = False
        self.lag = 0.0
        self.frozen = False
        self.blackholed = False
        self.command_marker: bytes | None = None
        self.reply_marker: bytes | None = None
        self.commands_held = 0
        self.replies_held = 0
        self.subscriber_chunks = 0  # chunks delivered to subscribers so far
        threading.Thread(target=self._accept, name="redis-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # --- faults ----------------------------------------------------------------------------

    def set_lag(self, seconds: float) -> None:
        with self._cond:
            self.lag = seconds
            self._cond.notify_all()

    def freeze(self) -> None:
        with self._cond:
            self.frozen = True

    def thaw(self) -> None:
        with self._cond:
            self.frozen = False
            self._cond.notify_all()

    def cut(self) -> None:
        self.blackholed = True

    def heal(self) -> None:
        self.blackholed = False

    def hold_commands(self, marker: bytes) -> None:
        with self._cond:
            self.command_marker = marker
            self.commands_held = 0

    def release_commands(self) -> None:
        with self._cond:
            self.command_marker = None
            self._cond.notify_all()

    def hold_replies(self, marker: bytes) -> None:
        with self._cond:
            self.reply_marker = marker
            self.replies_held = 0

    def release_replies(self) -> None:
        with self._cond:
            self.reply_marker = None
            self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self.lag = 0.0
            self.frozen = False
            self.command_marker = None
            self.reply_marker = None
            self._cond.notify_all()

    def subscriber_count(self) -> int:
        with self._cond:
            return sum(1 for conn in self._conns if conn.subscriber)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            conns = list(self._conns)
        with contextlib.suppress(OSError):
            self._listener.close()
        for conn in conns:
            conn.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                if self._closed:
                    return
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, upstream)
            with self._cond:
                self._conns.append(conn)
            threading.Thread(target=self._client_to_redis, args=(conn,), daemon=True).start()
            threading.Thread(target=self._redis_to_client, args=(conn,), daemon=True).start()

    def _client_to_redis(self, conn: _Conn) -> None:
        try:
            while True:
                data = conn.client.recv(65536)
                if not data:
                    break
                if b"SUBSCRIBE" in data:
                    conn.subscriber = True
                with self._cond:
                    marker = self.command_marker
                    if marker is not None and marker in data and not conn.subscriber:
                        self.commands_held += 1
                        self._cond.notify_all()
                        self._cond.wait_for(lambda m=marker: self.command_marker != m or self._closed)
                    marker = self.reply_marker
                    if marker is not None and marker in data and not conn.subscriber:
                        conn.hold_next_reply = marker
                if self.blackholed:
                    continue
                conn.upstream.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(conn)

    def _redis_to_client(self, conn: _Conn) -> None:
        try:
            while True:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                held_for = conn.hold_next_reply
                if held_for is not None:
                    conn.hold_next_reply = None
                    with self._cond:
                        self.replies_held += 1
                        self._cond.notify_all()
                        self._cond.wait_for(lambda m=held_for: self.reply_marker != m or self._closed)
                if conn.subscriber:
                    self._wait_subscriber_turn(time.monotonic() + self.lag)
                if self.blackholed:
                    continue
                conn.client.sendall(data)
                if conn.subscriber:
                    with self._cond:
                        self.subscriber_chunks += 1
                        self._cond.notify_all()
        except OSError:
            pass
        finally:
            self._drop(conn)

    def _wait_subscriber_turn(self, due: float) -> None:
        with self._cond:
            while not self._closed:
                if self.frozen:
                    self._cond.wait()
                    continue
                remaining = due - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        with self._cond:
            if conn in self._conns:
                self._conns.remove(conn)

    def wait_for(self, predicate, timeout: float) -> bool:
        """Until predicate(self) is true (checked whenever the proxy's state changes)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)


# --- A restartable Celery worker + beat ----------------------------------------------------------


class CeleryProcess:
    """One `celery -A newsite <args>` process in a session of its own (kill() is a kill -9 of
    the whole session: nothing it forked survives), logging to `log` (appended to on every
    start), ready when `ready_marker` appears in what this start logged."""

    def __init__(self, args: list[str], env: dict, log: Path, ready_marker: str):
        self.args = args
        self.env = env
        self.log = log
        self.ready_marker = ready_marker
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "newsite", *self.args], cwd=REPO,
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def logged(self) -> str:
        """What this start has logged so far."""
        with self.log.open("rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def ready(self) -> bool:
        if self.proc is None:
            return False
        if self.proc.poll() is not None:
            raise RuntimeError(f"celery {self.args[0]} exited ({self.proc.returncode}): {self.logged()[-3000:]}")
        return self.ready_marker in self.logged()

    def wait_ready(self, timeout: float = 40.0) -> None:
        if not wait_until(self.ready, timeout, 0.1):
            raise RuntimeError(f"celery {self.args[0]} not ready after {timeout}s: {self.logged()[-3000:]}")

    def kill(self) -> None:
        """kill -9, no warm or cold shutdown: what it was running is lost as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left of its session
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class CeleryWithBeat:
    """The stack's `celery worker` (solo pool, as tests.support.celery_worker starts it) and a
    `celery beat` beside it, its schedule file in `workdir`. kill() kills both with SIGKILL,
    start() starts both again and waits until both are ready."""

    def __init__(self, env: dict, workdir: Path, *, name: str = "freshness"):
        node = f"{name}-{os.getpid()}@%h"
        self.worker = CeleryProcess(
            ["worker", "-P", "solo", "-l", "info", "--without-heartbeat", "--without-gossip", "--without-mingle",
             "-n", node], env, workdir / "celery.log", "ready.")
        self.beat = CeleryProcess(
            ["beat", "-l", "info", "-s", str(workdir / "beat-schedule"), "--max-interval", "1"],
            env, workdir / "celery-beat.log", "beat: Starting")

    def start(self, timeout: float = 40.0) -> None:
        self.worker.start()
        self.beat.start()
        self.worker.wait_ready(timeout)
        self.beat.wait_ready(timeout)

    def kill(self) -> None:
        self.beat.kill()
        self.worker.kill()

    def stop(self) -> None:
        self.beat.stop()
        self.worker.stop()


# --- The stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    redis: PrivateRedis
    proxy: RedisProxy  # the readers' and the L2-only host's connections to Redis
    editor_proxy: RedisProxy  # the editor host's
    prefix: str
    editor: Gunicorn
    readers: Gunicorn
    l2only: Gunicorn | None = None
    edge: object | None = None  # tests.cdn.servers.Varnish
    reader_workers: int = 2
    lease_wait: float | None = None
    workdir: Path | None = None
    celery: CeleryWithBeat | None = None  # running_stack(beat=True): the worker and beat
    _clients: dict = field(default_factory=dict)

    def invalidation_channels(self) -> list[str]:
        """The pub/sub channels the app servers subscribe to (found in Redis, not built)."""
        raw = self.redis.client().pubsub_channels(f"{self.prefix}:*")
        return sorted(c.decode() for c in raw)


def _stack_env(prefix: str, private: PrivateRedis, proxy: RedisProxy, **extra) -> dict:
    env = app_env(
        DJANGO_SETTINGS_MODULE="tests.freshness.stack_settings",
        REDIS_URL=proxy.url,
        CACHE_KEY_PREFIX=prefix,
        CELERY_BROKER_URL=private.url(1),
        CELERY_TASK_ALWAYS_EAGER="false",
        DB_POOL_MIN="1",
        DB_POOL_MAX="4",
        **extra,
    )
    for name in ("FASTLY_SERVICE_ID", "CLOUDFLARE_ZONE_ID", "VARNISH_PURGE_URL", "FRESHNESS_LEASE_WAIT"):
        if name not in extra:
            env.pop(name, None)
    return env


@contextlib.contextmanager
def running_stack(workdir: Path, *, edge: bool = True, l2only: bool = True, reader_workers: int = 2,
                  reader_threads: int = 1, lease_wait: float | None = None, beat: bool = False,
                  worker_env: dict | None = None, server_env: dict | None = None,
                  editor_env: dict | None = None):
    """Start the stack (see the module docstring); yield a Stack; stop everything.

    beat: also run `celery -A newsite beat` (its schedule file in `workdir`) beside the worker,
    both in sessions of their own so a test can kill -9 and restart them (Stack.celery).
    worker_env: extra environment of the Celery worker (and beat).
    server_env: extra environment of the app servers (and the worker).
    editor_env: extra environment of the editor host only."""
    require_postgresql()
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    if edge and not shutil.which("varnishd"):
        pytest.skip("varnishd not installed")
    from django.conf import settings

    prefix = f"{settings.CACHES['default'].get('KEY_PREFIX') or 'newsite'}-fr{os.getpid()}-{free_port()}"
    with contextlib.ExitStack() as stack:
        private = PrivateRedis(workdir)
        stack.callback(private.stop)
        proxy = RedisProxy(private.port)
        stack.callback(proxy.close)
        editor_proxy = RedisProxy(private.port)
        stack.callback(editor_proxy.close)
        editor_port, readers_port, l2_port = free_ports(3)
        extra = dict(server_env or {})
        if lease_wait is not None:
            extra["FRESHNESS_LEASE_WAIT"] = str(lease_wait)
        varnish = None
        if edge:
            from tests.cdn.servers import Varnish

            varnish = Varnish(readers_port, urlconf="tests.freshness.urls")  # + the gated probe
            stack.callback(varnish.close)
            extra["VARNISH_PURGE_URL"] = varnish.url + "/"
        env = _stack_env(prefix, private, proxy, **extra)
        editor = Gunicorn(port=editor_port, workdir=workdir, env={**env, "REDIS_URL": editor_proxy.url, **(editor_env or {})},
                          workers=1)
        stack.callback(editor.stop)
        readers = Gunicorn(port=readers_port, workdir=workdir, env=env, workers=reader_workers, threads=reader_threads)
        stack.callback(readers.stop)
        l2 = None
        if l2only:
            l2 = Gunicorn(port=l2_port, workdir=workdir, env={**env, "CACHE_L1_ENABLED": "false"}, workers=1)
            stack.callback(l2.stop)
        celery = None
        if varnish is not None:
            varnish.start()
        if varnish is not None or beat:
            # the Celery worker's own Redis (cache) connection needs no faults: it goes direct
            celery_env = {**env, "REDIS_URL": private.url(0), **(worker_env or {})}
            if beat:
                celery = CeleryWithBeat(celery_env, workdir)
                stack.callback(celery.stop)
                celery.start()
            else:
                stack.enter_context(celery_worker(celery_env, workdir / "celery.log", name="freshness"))
        for server in (editor, readers, l2):
            if server is not None:
                server.wait_ready()
        yield Stack(redis=private, proxy=proxy, editor_proxy=editor_proxy, prefix=prefix, editor=editor, readers=readers, l2only=l2,
                    edge=varnish, reader_workers=reader_workers, lease_wait=lease_wait, workdir=workdir, celery=celery)


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, django_db_setup, django_db_blocker):
    """The full stack of the module (module-level FRESHNESS_STACK dict: running_stack kwargs)."""
    options = getattr(request.module, "FRESHNESS_STACK", {})
    workdir = tmp_path_factory.mktemp("freshness")
    with django_db_blocker.unblock(), running_stack(workdir, **options) as started:
        yield started


@pytest.fixture(autouse=True)
def _faults_off(request):
    """Every test starts (and ends) with the proxies passing everything through."""
    if "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        for proxy in (stack.proxy, stack.editor_proxy):
            proxy.reset()
        yield
        for proxy in (stack.proxy, stack.editor_proxy):
            proxy.reset()
    else:
        yield


# --- Helpers of the tests ------------------------------------------------------------------------


@dataclass
class Editor:
    """Writes through the editor host with a DRF token (the editorial API)."""

    base_url: str
    token: str

    def patch(self, article_id: int, **fields) -> dict:
        response = requests.patch(f"{self.base_url}/api/articles/{article_id}/", json=fields,
                                  headers={"Authorization": f"Token {self.token}"}, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, f"PATCH {article_id}: {response.status_code} {response.text[:500]}"
        return response.json()


@pytest.fixture
def editor(stack, transactional_db):
    from rest_framework.authtoken.models import Token

    from tests.factories import make_editor

    user = make_editor()
    return Editor(stack.editor.url, Token.objects.create(user=user).key)


@dataclass
class Seen:
    """One GET as a reader saw it."""

    status: int
    title: str | None
    version: int | None
    x_cache: str | None
    edge: str | None
    age: str | None
    cache_control: str | None

    def __str__(self):
        return (f"status={self.status} title={self.title!r} version={self.version} X-Cache={self.x_cache} "
                f"X-Cache-Edge={self.edge} Age={self.age} Cache-Control={self.cache_control!r}")


def get(url: str) -> Seen:
    response = requests.get(url, timeout=HTTP_TIMEOUT)
    body = {}
    if response.headers.get("Content-Type", "").startswith("application/json"):
        with contextlib.suppress(ValueError):
            body = response.json()
    return Seen(response.status_code, body.get("title"), body.get("version"), response.headers.get("X-Cache"),
                response.headers.get("X-Cache-Edge"), response.headers.get("Age"),
                response.headers.get("Cache-Control"))


def burst(url: str, n: int = BURST) -> list[Seen]:
    """`n` concurrent GETs of `url` (on a host with sync workers, every worker serves some)."""
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(get, [url] * n))


def warm_l1(base_url: str, path: str, attempts: int = 30) -> None:
    """GET bursts until one burst is answered HIT-L1 throughout: every worker holds `path`."""
    last = []
    for _ in range(attempts):
        last = burst(base_url + path)
        if all(s.x_cache == "HIT-L1" and s.status == 200 for s in last):
            return
    raise AssertionError(f"{path} never reached every worker's L1: {[str(s) for s in last[:4]]}")


def warm_edge(edge_url: str, path: str) -> Seen:
    """GET through the edge until it answers from its cache (X-Cache-Edge: HIT)."""
    seen = wait_until(lambda: (s := get(edge_url + path)).edge == "HIT" and s, 10, 0.01)
    assert seen, f"{path} never became an edge HIT"
    return seen


def shared_cacheable(cache_control: str | None) -> bool:
    """Whether a shared cache (the edge, a CDN) may store a response with this Cache-Control."""
    if not cache_control:
        return False
    directives = {}
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        directives[name] = value
    if "no-store" in directives or "private" in directives or "no-cache" in directives:
        return False
    if "s-maxage" in directives:
        return int(directives["s-maxage"] or 0) > 0
    return int(directives.get("max-age", "0") or 0) > 0


class AdvisoryGate:
    """Holds the advisory lock (GATE_CLASS, gate) on a connection of its own: loaders of
    /api/freshness/gated/<gate>/... wait at it until release()."""

    def __init__(self, gate: int):
        from django.db import connection

        from tests.freshness.views import GATE_CLASS
        from tests.support import database_url

        self.gate = gate
        self.klass = GATE_CLASS
        self.conn = psycopg.connect(database_url(connection.settings_dict), autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(%s, %s)", [self.klass, gate])
        self.held = True

    def waiting(self) -> int:
        """How many loaders wait at the gate now."""
        row = self.conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s AND objid = %s", [self.klass, self.gate]).fetchone()
        return int(row[0])

    def release(self) -> None:
        if self.held:
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", [self.klass, self.gate])
            self.held = False

    def close(self) -> None:
        self.release()
        self.conn.close()


_gate_numbers = itertools.count(1 + os.getpid() % 10_000 * 10_000)


@pytest.fixture
def gate():
    """gate() -> a held AdvisoryGate with a number of its own (released at the end)."""
    gates = []

    def make() -> AdvisoryGate:
        gates.append(AdvisoryGate(next(_gate_numbers)))
        return gates[-1]

    yield make
    for held in gates:
        held.close()


def outbox_ids_after(last_id: int) -> list[tuple[int, str]]:
    from cdn.models import PurgeOutbox

    return list(PurgeOutbox.objects.filter(pk__gt=last_id).order_by("pk").values_list("pk", "status"))


def last_outbox_id() -> int:
    from cdn.models import PurgeOutbox

    row = PurgeOutbox.objects.order_by("-pk").values_list("pk", flat=True).first()
    return row or 0


def purge_delivered_after(last_id: int) -> bool:
    """Some outbox row written after `last_id` was delivered (the edge received the purge)."""
    return any(status == "done" for _, status in outbox_ids_after(last_id))


def health_of_every_worker(base_url: str, workers: int, attempts: int = 40) -> dict[int, dict]:
    """/health/cache/ of each worker of a host, by pid (bursts until every pid answered)."""
    seen: dict[int, dict] = {}
    for _ in range(attempts):
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            for doc in pool.map(lambda _: requests.get(base_url + "/health/cache/", timeout=HTTP_TIMEOUT).json(),
                                range(BURST)):
                seen[doc["pid"]] = doc
        if len(seen) >= workers:
            return seen
    return seen


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, default=str)[:1500]
