"""The multi-host stack of issue 27 on real network stacks (bench/netns.py): nine namespaces on a
bridge of the harness's own, each a "host" with its own address.

  app1..app3   deploy/scripts/run-web.sh (granian, or --server's gunicorn), APP_WORKERS workers each,
               L1+L2, reads on the replica (DATABASE_REPLICA_URLS), purges to both edges
  edge1, edge2 varnishd with deploy/varnish/render-cluster-vcl.py's VCL over the three app hosts
               (health probes, round robin); the `purgers` ACL also admits the harness's subnet
  celery       one Celery worker with beat (-B): drains the outbox into both edges, re-drives
  redis        redis-server: db 0 the cache (L2, leases, the invalidation bus), db 1 the broker
  pg1, pg2     a private PostgreSQL primary and its asynchronous hot standby (bench/pgserver.py,
               pg_basebackup -R), the standby applying the WAL `replica_delay` s late

The harness (this process, in the root namespace) holds the bridge's first address and is the
only client from outside; `Cluster.url()` and every request it makes go through
Network.check_url. `Cluster.close()` stops every process and removes the namespaces; a run that
crashed is cleaned up by the next one (bench/netns.py).

Faults: `partition(host)` / `heal(host)` (a blackhole route to Redis inside the app host),
`restart_edge(edge)`, `stop_replica()` / `start_replica()`, `kill_celery()` / `start_celery()`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import db
from bench.netns import Network
from bench.pgserver import FAST, PG_BINS, PgServer, as_postgres
from bench.stack import ROOT, Proc, Stack, Unavailable, wait_http

APPS = ("app1", "app2", "app3")
EDGES = ("edge1", "edge2")
HOSTS = (*APPS, *EDGES, "celery", "redis", "pg1", "pg2")
APP_PORT, EDGE_PORT, REDIS_PORT, PG_PORT = 8000, 6081, 6379, 5432
APP_WORKERS = 2
DATABASE = "newsite"
KEY_PREFIX = "newsite-hosts"
# Every address of the harness is in 10.213.0.0/16 (bench/netns.py): exempt from the per-client
# limits of uncached reads, like the load balancer of a real deployment would be.
THROTTLE_EXEMPT = "10.0.0.0/8,127.0.0.0/8,::1"
BROADCAST_WAIT = "0.5"  # seconds (CACHE_BROADCAST_WAIT): see Cluster's app host environment
# Inherited variables that would point a host at something else than the cluster's own services.
DROPPED_ENV = ("DATABASE_REPLICA_URLS", "REDIS_SENTINELS", "VARNISH_PURGE_URL", "FASTLY_SERVICE_ID",
               "CLOUDFLARE_ZONE_ID", "PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


@dataclass
class Cluster:
    net: Network
    stack: Stack
    server: str = "granian"
    replica_delay: float = 0.5
    primary: PgServer | None = None
    standby: PgServer | None = None
    procs: dict[str, Proc] = field(default_factory=dict)  # host -> its current process
    commands: dict[str, tuple[list[str], dict | None]] = field(default_factory=dict)
    env: dict = field(default_factory=dict)  # the app hosts' and the worker's environment
    runs: dict[str, int] = field(default_factory=dict)
    keep_workdir: bool = False  # for a look at the logs after a failed start (HOSTS_KEEP_WORKDIR=1)

    # --- addresses ---------------------------------------------------------------------------

    def address(self, host: str) -> str:
        return self.net.address(host)

    def url(self, host: str, path: str = "") -> str:
        """http://<host's address>:<its port><path>, checked as the harness's own."""
        port = APP_PORT if host in APPS else EDGE_PORT if host in EDGES else None
        if port is None:
            raise ValueError(f"{host} serves no HTTP")
        return self.net.check_url(f"http://{self.address(host)}:{port}{path}")

    def metrics_dir(self, host: str) -> Path:
        """The app host's PROMETHEUS_MULTIPROC_DIR (its workers' counters)."""
        return self.stack.workdir / f"metrics-{host}"

    @property
    def database_url(self) -> str:
        return self.primary.url(DATABASE)

    # --- start -------------------------------------------------------------------------------

    @classmethod
    def start(cls, *, articles: int, server: str = "granian", replica_delay: float = 0.5, log=print) -> Cluster:
        """Everything up, seeded with `articles` demo articles; raises Unavailable (after
        cleaning up) when a piece cannot run here."""
        for binary in ("redis-server", "varnishd"):
            if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
                raise Unavailable(f"{binary} not installed")
        if not PG_BINS:
            raise Unavailable("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin)")
        net = Network.create(list(HOSTS))
        if net.leftovers:
            log(f"hosts: removed leftovers of a crashed run: {', '.join(net.leftovers)}")
        stack = Stack(workdir=Path(tempfile.mkdtemp(prefix="newsite-hosts-")))
        stack.workdir.chmod(0o755)  # varnishd's and postgres's processes write below it
        cluster = cls(net, stack, server=server, replica_delay=replica_delay,
                      keep_workdir=os.environ.get("HOSTS_KEEP_WORKDIR") == "1")
        try:
            cluster._start_redis()
            cluster._start_postgres()
            log(f"hosts: slot {net.slot}, {net.subnet}: redis {cluster.address('redis')}, primary "
                f"{cluster.address('pg1')}, standby {cluster.address('pg2')} ({replica_delay:g} s behind)")
            cluster.env = cluster._app_env()
            db.migrate(cluster.env)
            seeded = db.manage(["seed_demo", "--articles", str(articles)], cluster.env, timeout=900, quiet=True)
            if seeded.returncode != 0:
                raise Unavailable(f"seed_demo failed: {seeded.stderr.strip()[-500:]}")
            for host in APPS:
                cluster._start_app(host)
            for host in EDGES:
                cluster._start_edge(host)
            cluster.start_celery()
            log(f"hosts: {len(APPS)} app hosts x{APP_WORKERS} ({server}), {len(EDGES)} edges, a Celery host up")
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _spawn(self, host: str, command: list[str], env: dict | None = None) -> Proc:
        self.commands[host] = (command, env)
        self.runs[host] = self.runs.get(host, 0) + 1
        proc = self.stack.spawn(f"{host}-{self.runs[host]}", self.net.wrap(host, command), env=env, core=None)
        self.procs[host] = proc
        return proc

    def _start_redis(self) -> None:
        address = self.address("redis")
        workdir = self.stack.workdir / "redis"
        workdir.mkdir()
        proc = self._spawn("redis", [shutil.which("redis-server"), "--bind", address, "--port", str(REDIS_PORT),
                                     "--save", "", "--appendonly", "no", "--protected-mode", "no",
                                     "--dir", str(workdir), "--maxclients", "4000"])
        import redis

        client = redis.Redis(host=address, port=REDIS_PORT, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
            if proc.popen.poll() is not None:
                break
        raise Unavailable(f"redis-server in its namespace did not start: {proc.tail()}")

    def _start_postgres(self) -> None:
        bin_dir = Path(PG_BINS[-1])
        root = self.stack.workdir / "pg"
        root.mkdir()
        shutil.chown(root, "postgres", "postgres")  # root only (netns): the server runs as postgres
        self.primary = PgServer(bin_dir, root / "primary", PG_PORT, root / "primary.log",
                                host=self.address("pg1"), wrap=lambda c: self.net.wrap("pg1", c))
        self.standby = PgServer(bin_dir, root / "standby", PG_PORT, root / "standby.log",
                                host=self.address("pg2"), wrap=lambda c: self.net.wrap("pg2", c))
        self.primary.initdb()
        self.primary.start(*FAST, "-c wal_level=replica", "-c max_wal_senders=4", "-c max_connections=300")
        as_postgres(str(bin_dir / "pg_basebackup"), "-h", self.address("pg1"), "-p", str(PG_PORT), "-U", "postgres",
                    "-D", str(self.standby.data), "-R", "-X", "stream", "--no-sync",
                    wrap=lambda c: self.net.wrap("pg2", c))
        # Same port as the primary, whose socket lock (in its data directory) came with the copy.
        for lock in self.standby.data.glob(".s.PGSQL.*"):
            lock.unlink()
        self.start_replica()
        self.primary.query(f'create database "{DATABASE}"', db="postgres")

    def start_replica(self) -> None:
        self.standby.start(*FAST, "-c hot_standby=on", "-c max_connections=300",
                           f"-c recovery_min_apply_delay={int(self.replica_delay * 1000)}ms")

    def stop_replica(self) -> None:
        """The standby dies (immediate shutdown: every connection cut)."""
        self.standby.stop()

    def _app_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and not k.startswith(("WEB_", "GUNICORN_"))}
        redis_url = f"redis://{self.address('redis')}:{REDIS_PORT}"
        env.update({
            "DJANGO_SETTINGS_MODULE": "bench.settings", "BENCH_MODE": "l1l2",
            "DATABASE_URL": self.primary.url(DATABASE),
            "DATABASE_REPLICA_URLS": self.standby.url(DATABASE) + "?application_name=newsite-hosts-reads",
            "REDIS_URL": f"{redis_url}/0", "CELERY_BROKER_URL": f"{redis_url}/1",
            "CACHE_KEY_PREFIX": KEY_PREFIX, "DEBUG": "false", "LOG_LEVEL": "WARNING",
            # Nine namespaced services and the readers share two cores (load ~15-25): a healthy
            # host's apply can take longer than the 50 ms default, and while a host is cut off
            # every write waits the whole bound (its subscribers still count in Redis). A write
            # whose wait runs out returns before a slow host applied it (docs/scaling.md).
            "CACHE_BROADCAST_WAIT": BROADCAST_WAIT,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "VARNISH_PURGE_URL": ",".join(f"http://{self.address(e)}:{EDGE_PORT}/" for e in EDGES),
            "ALLOWED_HOSTS": ",".join(["localhost", "127.0.0.1", *self.net.hosts.values()]),
            "THROTTLE_EXEMPT": THROTTLE_EXEMPT,
        })
        return env

    def _start_app(self, host: str) -> None:
        metrics = self.metrics_dir(host)
        metrics.mkdir(exist_ok=True)
        env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics),
               "WEB_SERVER": "granian" if self.server == "granian" else "gunicorn",
               "WEB_BIND": f"{self.address(host)}:{APP_PORT}", "WEB_WORKERS": str(APP_WORKERS),
               "WEB_THREADS": "1" if self.server == "gunicorn-sync" else "4"}
        command = [str(ROOT / "deploy" / "scripts" / "run-web.sh")]
        if self.server != "granian":
            command += ["--no-control-socket"]
        proc = self._spawn(host, command, env)
        try:
            wait_http(self.url(host, "/bench/floor/"), timeout=60, proc=proc.popen)
        except Unavailable as exc:
            raise Unavailable(f"{host}: {exc}: {proc.tail()}") from exc

    def edge_vcl(self) -> str:
        rendered = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "varnish" / "render-cluster-vcl.py"),
             *[f"{self.address(a)}:{APP_PORT}" for a in APPS], "--interval", "0.5s", "--timeout", "1s"],
            check=True, capture_output=True, text=True, timeout=30).stdout
        # The app hosts purge from their own addresses: admit the harness's subnet (and no other).
        vcl, n = re.subn(r"(acl purgers \{)", rf'\1\n    "{self.net.subnet.network_address}"/{self.net.subnet.prefixlen};',
                         rendered, count=1)
        if n != 1:
            raise Unavailable("the cluster VCL has no `acl purgers`")
        return vcl

    def _start_edge(self, host: str) -> None:
        binary = shutil.which("varnishd") or "/usr/sbin/varnishd"
        workdir = self.stack.workdir / host
        workdir.mkdir(exist_ok=True)
        workdir.chmod(0o755)
        vcl = workdir / "cluster.vcl"
        vcl.write_text(self.edge_vcl())
        command = [binary, "-F", "-j", "none", "-n", str(workdir / "n"), "-a", f"{self.address(host)}:{EDGE_PORT}",
                   "-T", "127.0.0.1:6082", "-f", str(vcl), "-s", "malloc,128m", "-p", "default_grace=10"]
        self._restart(host, command)

    def _restart(self, host: str, command: list[str]) -> None:
        proc = self._spawn(host, command)
        try:
            wait_http(self.url(host, "/bench/floor/"), timeout=30, proc=proc.popen)
        except Unavailable as exc:
            raise Unavailable(f"{host}: {exc}: {proc.tail()}") from exc

    def start_celery(self) -> None:
        schedule = self.stack.workdir / "celerybeat-schedule"
        command = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "newsite", "worker", "-B", "-s", str(schedule),
                   "--loglevel", "info", "--concurrency", "2", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "-n", f"hosts-{self.net.slot}@%h"]
        proc = self._spawn("celery", command, {**self.env, "BENCH_MODE": "l1l2"})
        deadline = time.monotonic() + 60
        while "ready." not in proc.log.read_text(errors="replace"):
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"celery worker not ready: {proc.tail(3)}")
            time.sleep(0.2)

    # --- faults ------------------------------------------------------------------------------

    def partition(self, host: str) -> None:
        """`host` can no longer reach Redis (nor hear the invalidation bus); nothing else changes."""
        self.net.blackhole(host, self.address("redis"))

    def heal(self, host: str) -> None:
        self.net.heal(host, self.address("redis"))

    def stop_edge(self, host: str) -> None:
        self.procs[host].stop(timeout=10)

    def start_edge(self, host: str) -> None:
        self._restart(host, self.commands[host][0])

    def kill_celery(self) -> int:
        """The worker host dies: every process in its namespace SIGKILLed (worker and beat)."""
        killed = self.net.kill_host("celery")
        self.procs["celery"].popen.wait(10)
        return killed

    # --- stop --------------------------------------------------------------------------------

    def close(self) -> None:
        """Everything killed at once (the cluster is thrown away: no graceful stop), the
        namespaces removed."""
        try:
            for host in HOSTS:
                self.net.kill_host(host)
            for proc in self.stack.procs:
                proc.popen.wait(10)
            self.stack.procs.clear()
        finally:
            self.net.close()  # whatever still runs in a namespace is killed with it
            if not self.keep_workdir:
                shutil.rmtree(self.stack.workdir, ignore_errors=True)
