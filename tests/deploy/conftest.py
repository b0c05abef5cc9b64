"""Processes of the scale-out tests: gunicorn instances, a varnishd with the cluster VCL, and a
Redis master + replica + three sentinels. All bind 127.0.0.1 on free ports, live in temp dirs and
are stopped by the fixtures that start them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import requests

REPO = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """predicate()'s first truthy value, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database Django is connected to (the pytest test database)."""
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def child_env(**extra: str) -> dict:
    """This test's database, Redis db, key prefix and broker, for a child process."""
    from django.conf import settings
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "newsite.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": os.environ.get("REDIS_URL", settings.CACHES["default"]["LOCATION"]),
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "newsite"),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", settings.CELERY_BROKER_URL),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_REPLICA_URLS", None)
    env.pop("REDIS_SENTINELS", None)
    env.update(extra)
    return env


def require_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("other processes must open the test database: run on PostgreSQL (make test)")


class Gunicorn:
    """deploy/gunicorn.conf.py on a free port, in its own session (killpg stops the host)."""

    def __init__(self, *, port: int, workdir: Path, env: dict, workers: int = 1):
        self.port = port
        self.log = workdir / f"gunicorn-{port}.log"
        metrics = workdir / f"prom-{port}"
        metrics.mkdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(REPO / "deploy" / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "1",
             "--no-control-socket", "newsite.wsgi:application"],
            cwd=REPO, env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-3000:]}")
            try:
                requests.get(self.url + "/api/categories/", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn not answering after {timeout}s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """The host dies: master and workers at once, no graceful shutdown."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class ClusterVarnish:
    """varnishd -F with deploy/varnish/render-cluster-vcl.py's VCL over `backends`."""

    def __init__(self, *, port: int, admin_port: int, backends: list[int]):
        self.port = port
        self.admin_port = admin_port
        self.workdir = Path(tempfile.mkdtemp(prefix="newsite-cluster-varnish-"))
        self.workdir.chmod(0o755)  # varnishd's child runs as an unprivileged user
        self.vcl = self.workdir / "cluster.vcl"
        rendered = subprocess.run(
            [sys.executable, str(REPO / "deploy" / "varnish" / "render-cluster-vcl.py"),
             *[f"127.0.0.1:{p}" for p in backends], "--interval", "0.5s", "--timeout", "0.5s"],
            check=True, capture_output=True, text=True,
        ).stdout
        self.vcl.write_text(rendered)
        self.log = self.workdir / "varnishd.log"
        self.proc = subprocess.Popen(
            ["varnishd", "-F", "-a", f"127.0.0.1:{port}", "-T", f"127.0.0.1:{admin_port}",
             "-f", str(self.vcl), "-n", str(self.workdir / "n"), "-s", "malloc,32m",
             "-p", "default_grace=10"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"varnishd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        if not wait_until(listening, timeout):
            raise RuntimeError(f"varnishd did not listen: {self.log.read_text()[-2000:]}")

    def backend_health(self) -> dict[str, str]:
        """{"app1": "healthy" | "sick", ...} from `varnishadm backend.list`."""
        out = subprocess.run(
            ["varnishadm", "-n", str(self.workdir / "n"), "backend.list"],
            capture_output=True, text=True, timeout=10,
        ).stdout
        health = {}
        for line in out.splitlines()[1:]:
            fields = line.split()
            if fields and "app" in fields[0]:
                name = fields[0].rsplit(".", 1)[-1]
                health[name] = "sick" if "sick" in line.lower() else "healthy"
        return health

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- Redis master + replica + sentinels -------------------------------------------------------


class RedisProcess:
    def __init__(self, args: list[str], *, port: int, workdir: Path, name: str):
        self.port = port
        self.name = name
        self.log = workdir / f"{name}.log"
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), *args], cwd=workdir,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.3, socket_timeout=1.0)

    def wait_ready(self, timeout: float = 10.0) -> None:
        def pong():
            try:
                return self.client().ping()
            except redis.exceptions.ConnectionError:
                return False

        if not wait_until(pong, timeout):
            raise RuntimeError(f"{self.name} on {self.port} not answering")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class SentinelSet:
    """A master, one replica and three sentinels watching them as `master_name`."""

    master_name = "newsite-test"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        master_port, replica_port, *sentinel_ports = free_ports(5)
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        self.master = RedisProcess(["--port", str(master_port), *common, "--logfile", "master.log"],
                                   port=master_port, workdir=workdir, name="master")
        self.replica = RedisProcess(
            ["--port", str(replica_port), *common, "--logfile", "replica.log",
             "--replicaof", "127.0.0.1", str(master_port)],
            port=replica_port, workdir=workdir, name="replica")
        self.sentinels = []
        for port in sentinel_ports:
            conf = workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\nlogfile sentinel-{port}.log\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 3000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            self.sentinels.append(RedisProcess([str(conf), "--sentinel"], port=port, workdir=workdir,
                                               name=f"sentinel-{port}"))

    @property
    def sentinel_env(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_address(self) -> tuple[str, int] | None:
        """What the sentinels say now (the first one that answers)."""
        for sentinel in self.sentinels:
            try:
                host, port = sentinel.client().execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                return host.decode(), int(port)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, TypeError):
                continue
        return None

    def wait_ready(self) -> None:
        for process in (self.master, self.replica, *self.sentinels):
            process.wait_ready()

        def replica_synced():
            info = self.replica.client().info("replication")
            return info.get("master_link_status") == "up"

        def sentinels_know_replica():
            try:
                return all(
                    len(s.client().execute_command("SENTINEL", "REPLICAS", self.master_name)) == 1
                    and s.client().execute_command("SENTINEL", "CKQUORUM", self.master_name)
                    for s in self.sentinels
                )
            except redis.exceptions.ResponseError:
                return False

        if not wait_until(replica_synced, 15):
            raise RuntimeError("the replica did not sync with the master")
        if not wait_until(sentinels_know_replica, 20, interval=0.2):
            raise RuntimeError("the sentinels did not discover the replica / each other")

    def close(self) -> None:
        for process in (*self.sentinels, self.replica, self.master):
            process.kill()


@pytest.fixture
def sentinel_set(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    group = SentinelSet(workdir)
    try:
        group.wait_ready()
        yield group
    finally:
        group.close()
