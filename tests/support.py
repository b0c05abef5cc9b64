"""Helpers shared by tests that start real processes: free ports and waiting, the test database's
URL and environments for a child process, and the processes themselves (a private redis-server,
gunicorn, varnishd, a Celery worker). Everything binds 127.0.0.1 on free ports and is stopped by
the fixture or context manager that started it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

REPO = Path(__file__).resolve().parents[1]


# --- Ports and waiting -------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open while choosing, so none repeats)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """predicate()'s first truthy value, or its last (falsy) value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    if not wait_until(lambda: listening(port), timeout):
        raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def require_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("other processes must open the test database: run on PostgreSQL (make test)")


# --- Environments for a child process ----------------------------------------------------------


def database_url(settings_dict: dict | None = None) -> str:
    """A DATABASE_URL reaching the (test) database Django is connected to."""
    if settings_dict is None:
        from django.db import connection

        settings_dict = connection.settings_dict
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


@contextlib.contextmanager
def row_locked(settings_dict: dict, select_for_update: str, params=()):
    """Another connection (a thread of its own) runs `select_for_update` (a SELECT ... FOR UPDATE)
    and holds the rows it locked until the block ends: what a concurrent transaction would."""
    import psycopg

    locked, release = threading.Event(), threading.Event()

    def hold():
        with psycopg.connect(database_url(settings_dict)) as conn, conn.transaction():
            conn.execute(select_for_update, list(params))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        assert locked.wait(10), "the lock was not taken"
        yield
    finally:
        release.set()
        holder.join(10)


def child_env(**extra) -> dict:
    """This process's environment for a child on the test database, tasks not eager, no CDN
    backends but those the caller names."""
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_TASK_ALWAYS_EAGER": "false"}
    for name in ("VARNISH_PURGE_URL", "FASTLY_SERVICE_ID", "CLOUDFLARE_ZONE_ID"):
        env.pop(name, None)
    env.update(extra)
    return env


def app_env(**extra: str) -> dict:
    """For an app server or worker of the scale-out tests: this test's database, Redis db, key
    prefix and broker named explicitly, DEBUG off, warnings only, no replicas or sentinels but
    those the caller names."""
    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "newsite.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", settings.CACHES["default"]["LOCATION"]),
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "newsite"),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", settings.CELERY_BROKER_URL),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_REPLICA_URLS", None)
    env.pop("REDIS_SENTINELS", None)
    for name in [n for n in env if n.startswith(("WEB_", "GUNICORN_", "GRANIAN_"))]:
        env.pop(name)  # the web server of a test is the one it names
    env.update(extra)
    return env


# --- Processes ---------------------------------------------------------------------------------


def _terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class RedisServer:
    """A redis-server on a fixed free port, so it can be stopped and started again. It binds
    `host` (127.0.0.1 unless told: then protected mode is off, there is no password) and is
    started as `wrap(command)` (e.g. inside a network namespace, bench/netns.Network.wrap)."""

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1", wrap=lambda command: command):
        self.port = free_port()
        self.dir = workdir
        self.host = host
        self.wrap = wrap
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.wrap([shutil.which("redis-server"), "--port", str(self.port), "--bind", self.host, "--save", "",
                       "--appendonly", "no", "--dir", str(self.dir), "--loglevel", "warning",
                       "--protected-mode", "yes" if self.host == "127.0.0.1" else "no"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = self.client(socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, **kwargs)


@pytest.fixture
def private_redis(tmp_path):
    """A started RedisServer of this test's own (import it into a conftest to use it)."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server binary not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class _AppServer:
    """An app server on 127.0.0.1:port with `env`, in its own session (killpg stops the host).
    Its log is workdir/<name>-<port>.log; its PROMETHEUS_MULTIPROC_DIR is `metrics_dir`, by default
    a new workdir/prom-<port>. wait_ready() polls `ready_path` until it answers."""

    name = "app"

    def __init__(self, *, port: int, workdir: Path, env: dict, workers: int = 1,
                 metrics_dir: Path | None = None, ready_path: str = "/health/"):
        self.port = port
        self.ready_path = ready_path
        self.log = workdir / f"{self.name}-{port}.log"
        if metrics_dir is None:
            metrics_dir = workdir / f"prom-{port}"
            metrics_dir.mkdir()
        self.metrics_dir = metrics_dir
        self.proc = subprocess.Popen(
            self.command(port, workers), cwd=REPO,
            env={**self.server_env(port, workers, env), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def command(self, port: int, workers: int) -> list[str]:
        raise NotImplementedError

    def server_env(self, port: int, workers: int, env: dict) -> dict:
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The worker processes (the spawned master's children: gunicorn's and granian's)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def wait_ready(self, timeout: float = 40.0) -> None:
        import requests  # here: tests/library runs tests/caching with this module where requests is not installed

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                requests.get(self.url + self.ready_path, timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not answering after {timeout}s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """The host dies: master and workers at once, no graceful shutdown."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything of its session left (workers)
        except ProcessLookupError:
            pass
        self.proc.wait(5)


class Gunicorn(_AppServer):
    """deploy/gunicorn.conf.py: sync workers, or with `threads` > 1 gthread ones (one thread may
    wait on a held Redis reply while the others keep answering)."""

    name = "gunicorn"

    def __init__(self, *, threads: int = 1, **kwargs):
        self.threads = threads
        super().__init__(**kwargs)

    def command(self, port: int, workers: int) -> list[str]:
        threaded = ["--worker-class", "gthread"] if self.threads > 1 else []
        return [sys.executable, "-m", "gunicorn", "-c", str(REPO / "deploy" / "gunicorn.conf.py"),
                "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(self.threads),
                *threaded,
                # no shared $HOME/.gunicorn/gunicorn.ctl with other servers running at the same time
                "--no-control-socket", "newsite.wsgi:application"]

    def server_env(self, port: int, workers: int, env: dict) -> dict:
        return {**env, "GUNICORN_THREADS": str(self.threads)}


class WebServer(_AppServer):
    """deploy/scripts/run-web.sh: the web server `make up`, systemd and docker-compose start
    (granian unless env names WEB_SERVER=gunicorn), with `workers` workers of WEB_THREADS (2)
    threads each."""

    name = "web"

    def command(self, port: int, workers: int) -> list[str]:
        return [str(REPO / "deploy" / "scripts" / "run-web.sh")]

    def server_env(self, port: int, workers: int, env: dict) -> dict:
        return {"WEB_THREADS": "2", **env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": str(workers)}


class Varnishd:
    """varnishd -F on 127.0.0.1:port (admin on admin_port) with `vcl`, in a temp dir; start()
    waits until it listens, stop()/start() keep the ports, close() also removes the temp dir."""

    def __init__(self, *, port: int, admin_port: int, vcl: str, storage: str = "malloc,64m",
                 params: tuple[str, ...] = (), prefix: str = "newsite-varnish-"):
        self.port = port
        self.admin_port = admin_port
        self.storage = storage
        self.params = params
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.workdir.chmod(0o755)  # varnishd's child runs as an unprivileged user
        self.vcl = self.workdir / "test.vcl"
        self.vcl.write_text(vcl)
        self.log = self.workdir / "varnishd.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0):
        self.proc = subprocess.Popen(
            ["varnishd", "-F", "-a", f"127.0.0.1:{self.port}", "-T", f"127.0.0.1:{self.admin_port}",
             "-f", str(self.vcl), "-n", str(self.workdir / "n"), "-s", self.storage, *self.params],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
        )

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"varnishd exited ({self.proc.returncode}) on ports {self.port}/{self.admin_port}: "
                    f"{self.log.read_text()[-2000:]}"
                )
            return listening(self.port)

        if not wait_until(up, timeout):
            self.stop()
            raise RuntimeError(f"varnishd did not listen on {self.port}: {self.log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _terminate(self.proc, 10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


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
        _terminate(proc, 15)
        log.close()


# --- headless Chromium (Debian's chromium + chromedriver; selenium never downloads anything) ---

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
)


@contextlib.contextmanager
def chromium(*, width: int, height: int):
    """A selenium Chrome driver on Debian's chromium at `width` x `height`, quit at the end
    (skips the test if selenium or the Debian packages are missing)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(deploy/scripts/ensure-services.sh installs them: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    # An explicit driver path: selenium-manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()

