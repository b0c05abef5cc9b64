"""Processes of the scale-out tests (gunicorn, the Celery worker and the helpers they share are in
tests/support.py): a varnishd with the cluster VCL, and a Redis master + replica + three
sentinels. All bind 127.0.0.1 on free ports, live in temp dirs and are stopped by the fixtures
that start them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.support import REPO, Varnishd, free_ports, wait_until


class ClusterVarnish(Varnishd):
    """varnishd -F with deploy/varnish/render-cluster-vcl.py's VCL over `backends`."""

    def __init__(self, *, port: int, admin_port: int, backends: list[int]):
        rendered = subprocess.run(
            [sys.executable, str(REPO / "deploy" / "varnish" / "render-cluster-vcl.py"),
             *[f"127.0.0.1:{p}" for p in backends], "--interval", "0.5s", "--timeout", "0.5s"],
            check=True, capture_output=True, text=True,
        ).stdout
        super().__init__(port=port, admin_port=admin_port, vcl=rendered, storage="malloc,32m",
                         params=("-p", "default_grace=10"), prefix="newsite-cluster-varnish-")

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
