"""Processes the benchmark starts and stops: Redis, app servers, Varnish, a Celery worker.

Everything binds 127.0.0.1 on a free port, runs in its own process group, and is stopped by
Stack.close() (also on Ctrl-C). Servers are pinned to core 0 and the load generator to core 1
when `taskset` works and the machine has at least two cores.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
VCL_PATH = ROOT / "deploy" / "varnish" / "default.vcl"


class Unavailable(Exception):
    """A piece of the stack cannot run here; the message is the reason shown in the report."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _taskset_works() -> bool:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return False
    return subprocess.run(["taskset", "-c", "1", "true"], capture_output=True).returncode == 0


TASKSET = _taskset_works()


def pinned(cmd: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if TASKSET else cmd


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Unavailable(f"exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise Unavailable(f"{url} did not answer in {timeout:.0f}s ({last})")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class AppServer:
    mode: str
    kind: str
    port: int
    workers: int
    metrics_dir: Path
    proc: Proc

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """Owns every process the run starts; close() stops them in reverse order."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="newsite-bench-")))
    procs: list[Proc] = field(default_factory=list)
    metric_dirs: list[Path] = field(default_factory=list)

    def spawn(self, name: str, cmd: list[str], env: dict | None = None, core: int | None = 0) -> Proc:
        log = self.workdir / f"{name}.log"
        fh = open(log, "wb")
        full = pinned(cmd, core) if core is not None else cmd
        popen = subprocess.Popen(
            full, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        fh.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def pid_of(self, name: str) -> int | None:
        """The pid of the running process started as `name` (its process tree is what bench/cpu.py
        measures: taskset execs the command, so the pid is the command's own)."""
        for proc in self.procs:
            if proc.name == name and proc.popen.poll() is None:
                return proc.popen.pid
        return None

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    # --- Redis -------------------------------------------------------------------------------
    def start_redis(self) -> int:
        """A private redis-server, so INFO commandstats counts the servers under test only."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server not installed")
        port = free_port()
        proc = self.spawn(
            "redis",
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--maxclients", "10000"],
            core=0,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return port
            except OSError:
                time.sleep(0.1)
            if proc.popen.poll() is not None:
                break
        raise Unavailable(f"private redis-server did not start: {proc.tail()}")

    # --- app servers -------------------------------------------------------------------------
    def start_app(self, mode: str, env: dict, kind: str = "gunicorn-sync", workers: int = 2,
                  threads: int = 4, app: str = "newsite.wsgi:application") -> AppServer:
        """`mode` ending in "-asgi": newsite.asgi under granian's ASGI interface, with the
        settings of the mode before it (l1l2-asgi: l1l2's)."""
        interface = "wsgi"
        bench_mode = mode
        if mode.endswith("-asgi"):
            interface, bench_mode, app = "asgi", mode.removesuffix("-asgi"), "newsite.asgi:application"
            if kind != "granian":
                raise Unavailable(f"{mode}: ASGI needs --server granian, not {kind}")
        port = free_port()
        metrics_dir = self.workdir / f"metrics-{mode}-{kind}-{port}"
        metrics_dir.mkdir()
        self.metric_dirs.append(metrics_dir)
        env = {**env, "BENCH_MODE": bench_mode, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
               "prometheus_multiproc_dir": str(metrics_dir)}
        bind = f"127.0.0.1:{port}"
        if kind.startswith("gunicorn"):
            cmd = [str(VENV_BIN / "gunicorn"), app, "--bind", bind,
                   "--workers", str(workers), "--backlog", "2048", "--timeout", "60",
                   "--log-level", "warning"]
            if kind == "gunicorn-gthread":
                cmd += ["--worker-class", "gthread", "--threads", str(threads)]
            else:
                cmd += ["--worker-class", "sync"]
        elif kind == "granian":
            if not (VENV_BIN / "granian").exists():
                raise Unavailable("granian not installed")
            cmd = [str(VENV_BIN / "granian"), "--interface", interface, "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--no-ws", "--log-level", "warning"]
            if interface == "wsgi":  # ASGI: one event loop thread per worker (run-web.sh does the same)
                cmd += ["--blocking-threads", str(threads)]
            cmd.append(app)
        else:
            raise ValueError(f"unknown server kind {kind}")
        proc = self.spawn(f"app-{mode}-{kind}", cmd, env=env, core=0)
        server = AppServer(mode, kind, port, workers, metrics_dir, proc)
        try:
            wait_http(server.base_url + "/bench/floor/", timeout=40, proc=proc.popen)
        except Unavailable as exc:
            proc.stop()
            raise Unavailable(f"{kind} ({mode}) {exc}: {proc.tail()}") from exc
        return server

    def stop_app(self, server: AppServer) -> None:
        server.proc.stop()
        if server.proc in self.procs:
            self.procs.remove(server.proc)

    # --- Varnish -----------------------------------------------------------------------------
    def start_varnish(self, backend_port: int) -> tuple[int, Path]:
        """varnishd with deploy/varnish/default.vcl, its backend pointed at backend_port."""
        binary = shutil.which("varnishd") or ("/usr/sbin/varnishd" if Path("/usr/sbin/varnishd").exists() else None)
        if binary is None:
            raise Unavailable("varnishd not installed")
        if not VCL_PATH.exists():
            raise Unavailable(f"{VCL_PATH.relative_to(ROOT)} not written yet")
        vcl = point_vcl_backend(VCL_PATH.read_text(), backend_port)
        vcl_file = self.workdir / "bench.vcl"
        vcl_file.write_text(vcl)
        port = free_port()
        name_dir = self.workdir / "varnish"
        cmd = [binary, "-F", "-j", "none", "-n", str(name_dir), "-a", f"127.0.0.1:{port}",
               "-T", f"127.0.0.1:{free_port()}", "-f", str(vcl_file), "-s", "malloc,256m",
               "-p", "thread_pool_min=20", "-p", "default_grace=10"]
        proc = self.spawn("varnish", cmd, core=0)
        try:
            wait_http(f"http://127.0.0.1:{port}/bench/floor/", timeout=20, proc=proc.popen)
        except Unavailable as exc:
            proc.stop()
            raise Unavailable(f"varnishd: {exc}: {proc.tail(3)}") from exc
        return port, name_dir

    # --- Celery ------------------------------------------------------------------------------
    def start_celery(self, env: dict) -> Proc:
        cmd = [str(VENV_BIN / "celery"), "-A", "newsite", "worker", "--loglevel", "warning",
               "--concurrency", "1", "--pool", "solo", "--without-gossip", "--without-mingle"]
        proc = self.spawn("celery", cmd, env={**env, "BENCH_MODE": "l1l2"}, core=0)
        time.sleep(3)
        if proc.popen.poll() is not None:
            raise Unavailable(f"celery worker exited: {proc.tail(3)}")
        return proc


_BACKEND_RE = re.compile(r"(backend\s+default\s*\{)(.*?)(\n\s*\})", re.S)


def point_vcl_backend(vcl: str, port: int) -> str:
    """The VCL with `backend default`'s .host/.port replaced by 127.0.0.1:port."""
    match = _BACKEND_RE.search(vcl)
    if match is None:
        raise Unavailable("default.vcl has no `backend default { ... }` block")
    body = re.sub(r'\.host\s*=\s*"[^"]*"\s*;', '.host = "127.0.0.1";', match.group(2))
    body = re.sub(r'\.port\s*=\s*"[^"]*"\s*;', f'.port = "{port}";', body)
    return vcl[: match.start(2)] + body + vcl[match.end(2):]
