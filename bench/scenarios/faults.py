"""Scenario `faults`: the issue-15 fault table under load (`make bench BENCH_ARGS="--scenario faults"`).

A stack of its own on the benchmark database: a cache redis-server and a broker redis-server
(each can go down alone; restarts keep the port and load nothing unless the row saved a snapshot
first), the web server `make up` starts (deploy/scripts/run-web.sh; --server, granian by default;
l1l2, --workers) with NO CDN settings, varnishd in front of it, and a Celery
worker purging that varnishd. Python reader threads GET a mix of article details (the edited ones
among them) and home-feed pages, half through the app and half through the edge, and record every
answer per second; a writer PATCHes articles through the editorial API all along.

Faults, one after the other, each FAULT_SECONDS long (5 with --smoke), with a recovery window:
  redis      the cache redis-server killed (SIGKILL), restarted empty; measured like-for-like
             against a second web server (same server, workers and threads) with L2 disabled
             (CACHE_L2_ENABLED=false: L1 + PostgreSQL, no Redis): the same app-only readers and
             the same writer alternate between the two servers in 5 s slices during the outage;
             req/s and the workers' CPU time per request
  snapshot   the cache redis-server SAVEs, the writer edits, Redis is killed and restarted from
             that older RDB (the invalidation sequence and every invalidation after the SAVE are
             gone): L1 clears per worker and stale reads 1 s after the restart
  broker     the broker stopped, restarted; then the Celery worker kill -9 while it drains
  varnish    varnishd stopped (unreachable), restarted on the same port
  worker     one web server worker kill -9 (its master respawns it)
  postgresql a private PostgreSQL cluster (bench/pgserver.py: the machine's own is shared and
             never stopped) seeded with PG_ARTICLES articles, its own web server (same server,
             workers and threads) on it, Redis db PG_REDIS_DB of the cache server: the readers take the
             cached URLs (read before the fault) and URLs never read, the writer edits cached
             articles there; the cluster stopped (immediate) for PG_FAULT_SECONDS, then started.
             Counted: 200s of the cached URLs, 503s of the others with their latency percentiles
             and Retry-After, any other answer, cache keys deleted during the outage, and the
             edited articles compared with that database after recovery.

After each recovery: every outbox row of the window delivered (none dead), and each edited
article read through every app worker and the edge, compared with PostgreSQL (stale = an older
title).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.context import log
from bench.stack import ROOT, Unavailable, free_port, point_vcl_backend, wait_http
from bench.stats import percentile

SHARED_SERVERS = None  # starts its own stack
IN_ALL = False  # minutes long: run it by name (--scenario faults)
FAULT_SECONDS = 30.0
RECOVERY_SECONDS = 15.0
WARM_SECONDS = 3.0  # the L2-disabled server's L1s fill before its first measured window
SLICES = 6  # the Redis outage alternates app / L2-disabled slices of FAULT_SECONDS / SLICES
READERS = 8
EDITED = 6  # articles the writer cycles through
PG_FAULT_SECONDS = 60.0  # issue 15: "PostgreSQL stopped for 60 s" (5 with --smoke)
PG_ARTICLES = 300  # seeded in the private cluster
PG_CACHED = 40  # of them read before the fault (cached in every tier); PG_ARTICLES - PG_CACHED never read
PG_REDIS_DB = 2  # the PostgreSQL row's L2: a db of its own on the cache redis-server
SLOW_503_MS = 50  # issue 15: "others 503 + Retry-After within 50 ms"
FAULTS = ("redis", "snapshot", "broker", "varnish", "worker", "postgresql")  # the rows (--faults)


# --- Processes ------------------------------------------------------------------------------


class Service:
    """A process with a fixed port that can be killed and started again (same command)."""

    def __init__(self, ctx, name: str, cmd: list[str], port: int, env: dict | None = None):
        self.ctx, self.name, self.cmd, self.port, self.env = ctx, name, cmd, port, env
        self.proc = None
        self.runs = 0

    def start(self, wait_path: str | None = None) -> Service:
        self.runs += 1
        self.proc = self.ctx.stack.spawn(f"faults-{self.name}-{self.runs}", self.cmd, env=self.env, core=0)
        if wait_path is None:
            _wait_port(self.port, self.proc.popen)
        else:
            wait_http(f"http://127.0.0.1:{self.port}{wait_path}", timeout=60, proc=self.proc.popen)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.popen.poll() is None:
            os.killpg(self.proc.popen.pid, signal.SIGKILL)
            self.proc.popen.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def _wait_port(port: int, popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise Unavailable(f"exited with {popen.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise Unavailable(f"nothing listens on {port} after {timeout:.0f}s")


def _redis(ctx, name: str) -> Service:
    port = free_port()
    workdir = ctx.stack.workdir / f"faults-{name}"
    workdir.mkdir(exist_ok=True)
    return Service(ctx, name, [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
                               "--save", "", "--appendonly", "no", "--dir", str(workdir)], port).start()


def _web(ctx, env: dict, workers: int) -> Service:
    """deploy/scripts/run-web.sh on a free port: the server `make up`, systemd and compose start,
    as --server names it (granian by default, or gunicorn sync / gthread), --workers workers of
    --threads threads (sync: 1)."""
    port = free_port()
    metrics = ctx.stack.workdir / f"faults-metrics-{port}"
    metrics.mkdir()
    server = ctx.opts.server
    env = {**env, "BENCH_MODE": "l1l2", "PROMETHEUS_MULTIPROC_DIR": str(metrics),
           "WEB_SERVER": "granian" if server == "granian" else "gunicorn", "WEB_BIND": f"127.0.0.1:{port}",
           "WEB_WORKERS": str(workers), "WEB_THREADS": "1" if server == "gunicorn-sync" else str(ctx.opts.threads)}
    cmd = [str(ROOT / "deploy" / "scripts" / "run-web.sh")]
    if server != "granian":
        # No max_requests recycling (a recycled worker's CPU would drop out of the per-slice sums,
        # its L1 and pid out of the per-worker checks); the bench's request timeout.
        cmd += ["--max-requests", "0", "--timeout", "60"]
    return Service(ctx, f"app-{port}", cmd, port, env).start("/bench/floor/")


def _varnish(ctx, backend_port: int) -> Service:
    binary = shutil.which("varnishd") or "/usr/sbin/varnishd"
    vcl = ctx.stack.workdir / "faults.vcl"
    vcl.write_text(point_vcl_backend((ROOT / "deploy" / "varnish" / "default.vcl").read_text(), backend_port))
    port = free_port()
    cmd = [binary, "-F", "-j", "none", "-n", str(ctx.stack.workdir / "faults-varnish"), "-a", f"127.0.0.1:{port}",
           "-T", f"127.0.0.1:{free_port()}", "-f", str(vcl), "-s", "malloc,256m", "-p", "thread_pool_min=20"]
    return Service(ctx, "varnish", cmd, port).start("/bench/floor/")


def _celery(ctx, env: dict) -> Service:
    cmd = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "newsite", "worker", "--loglevel", "info", "--pool", "solo",
           "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"faults-{os.getpid()}@%h"]
    service = Service(ctx, "celery", cmd, 0, {**env, "BENCH_MODE": "l1l2"})
    service.runs += 1
    service.proc = ctx.stack.spawn(f"faults-celery-{service.runs}", cmd, env=service.env, core=0)
    deadline = time.monotonic() + 60
    while "ready." not in service.proc.log.read_text(errors="replace"):
        if service.proc.popen.poll() is not None or time.monotonic() > deadline:
            raise Unavailable(f"celery worker not ready: {service.proc.tail(3)}")
        time.sleep(0.2)
    return service


def _worker_pids(app: Service) -> list[int]:
    """The web server's workers: the master (granian's or gunicorn's) is the spawned process."""
    master = app.proc.popen.pid
    try:
        return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


# --- Load and writer -------------------------------------------------------------------------


# The stack's web server, its Varnish, the L2-disabled one; the PostgreSQL row's web server on
# cached URLs and on URLs never read.
TIERS = ("app", "edge", "l2off", "pgcached", "pgcold")


class Timeline:
    """Answers per second since t0, as "<tier>:<kind>" (tier: TIERS; kind ok: 2xx-4xx, s503,
    s5xx: another 5xx, errors: no HTTP answer), and running totals (for exact windows)."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.bins: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.totals: dict[str, int] = defaultdict(int)
        self.windows: list[tuple[str, float, float]] = []  # fault windows (shaded red)
        self.baselines: list[tuple[str, float, float]] = []  # L2-disabled windows (shaded grey)
        self.latencies: dict[str, list[float]] | None = None  # "<tier>:<kind>" -> ms, while recording

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, kind: str, ms: float | None = None) -> None:
        second = int(self.now())
        with self.lock:
            self.bins[second][kind] += 1
            self.totals[kind] += 1
            if self.latencies is not None and ms is not None:
                self.latencies[kind].append(ms)

    def record_latencies(self) -> None:
        with self.lock:
            self.latencies = defaultdict(list)

    def take_latencies(self) -> dict[str, list[float]]:
        with self.lock:
            taken, self.latencies = self.latencies or {}, None
        return dict(taken)

    def running(self) -> dict[str, int]:
        with self.lock:
            return dict(self.totals)

    def between(self, start: float, end: float) -> dict[str, float]:
        """Totals of [start, end) s, and req/s: all, and per tier (`<tier>_req_s`)."""
        with self.lock:
            seconds = [s for s in self.bins if start <= s < end]
            totals = defaultdict(int)
            for s in seconds:
                for kind, n in self.bins[s].items():
                    totals[kind] += n
        span = max(1e-9, end - start)
        out = {"requests": sum(totals.values()), "req_s": sum(totals.values()) / span}
        for tier in TIERS:
            out[f"{tier}_req_s"] = sum(n for k, n in totals.items() if k.startswith(tier + ":")) / span
        return {**out, **totals}


class Readers:
    def __init__(self, urls: list[tuple[str, str]], timeline: Timeline, threads: int = READERS):
        """urls: (tier, url) pairs; `retarget` swaps them while the threads run."""
        import requests

        self.requests = requests
        self.urls, self.timeline = urls, timeline
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> Readers:
        for t in self.threads:
            t.start()
        return self

    def retarget(self, urls: list[tuple[str, str]]) -> None:
        self.urls = urls  # each thread reads the list once per request

    def _run(self, offset: int) -> None:
        session = self.requests.Session()
        i = offset * 7
        while not self.stop_event.is_set():
            urls = self.urls
            tier, url = urls[i % len(urls)]
            i += 1
            started = time.perf_counter()
            try:
                response = session.get(url, timeout=10)
                status = response.status_code
                kind = "ok" if status < 500 else ("s5xx" if status != 503 else
                                                  "s503" if response.headers.get("Retry-After") else "s503_bare")
            except self.requests.RequestException:
                kind = "errors"
                session = self.requests.Session()
            self.timeline.add(f"{tier}:{kind}", 1000 * (time.perf_counter() - started))

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(15)


class Writer:
    """PATCHes the edited articles' titles through the editorial API, one every `every` s, to
    `base_url` (switched between servers by the Redis row)."""

    def __init__(self, base_url: str, token: str, ids: list[int], every: float = 0.5):
        """`base_url`, `token` and `ids` may be swapped while it runs (the PostgreSQL row)."""
        import requests

        self.requests = requests
        self.base_url, self.token, self.ids, self.every = base_url, token, ids, every
        self.stop_event = threading.Event()
        self.paused = threading.Event()  # set while the checks read: the titles must hold still
        self.idle = threading.Event()  # set by the thread once paused (no edit in flight)
        self.label = "start"
        self.edits: list[tuple[str, int, int]] = []  # (window label, article id, HTTP status)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self.thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self.stop_event.wait(self.every):
            if self.paused.is_set():
                self.idle.set()
                continue
            self.idle.clear()
            base_url, token, ids = self.base_url, self.token, self.ids
            article_id = ids[n % len(ids)]
            n += 1
            try:
                status = self.requests.patch(f"{base_url}/api/articles/{article_id}/",
                                             json={"title": f"faults {self.label} edit {n}"},
                                             headers={"Authorization": f"Token {token}"}, timeout=15).status_code
            except self.requests.RequestException:
                status = 0
            self.edits.append((self.label, article_id, status))

    def pause(self, timeout: float = 20.0) -> None:
        """Stop editing; return once no edit is in flight."""
        self.idle.clear()
        self.paused.set()
        self.idle.wait(timeout)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(20)


# --- Checks -----------------------------------------------------------------------------------


def _db_titles(dsn: str, ids: list[int]) -> dict[int, str]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return dict(conn.execute("SELECT id, title FROM articles_article WHERE id = ANY(%s)", (ids,)).fetchall())


def _outbox(dsn: str, since_id: int) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM cdn_purgeoutbox WHERE id > %s GROUP BY status",
                            (since_id,)).fetchall()
    return dict(rows)


def _last_outbox_id(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM cdn_purgeoutbox").fetchone()[0]


def _stale(app_url: str, edge_url: str | None, ids: list[int], expected: dict[int, str]) -> dict[str, int]:
    """Reads of each edited article through the app (concurrent bursts: every worker) and the
    edge whose title is not PostgreSQL's."""
    import requests

    def title(url):
        try:
            return requests.get(url, timeout=10).json().get("title")
        except (requests.RequestException, ValueError):
            return None

    stale = {"app": 0, "edge": 0, "reads": 0}
    tiers = [("app", app_url, 16)] + ([("edge", edge_url, 2)] if edge_url else [])
    with ThreadPoolExecutor(max_workers=8) as pool:
        for article_id in ids:
            for tier, base, n in tiers:
                for got in pool.map(title, [f"{base}/api/articles/{article_id}/"] * n):
                    stale["reads"] += 1
                    stale[tier] += got != expected[article_id]
    return stale


def _wait_delivered(dsn: str, since_id: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = _outbox(dsn, since_id)
        if not counts.get("pending") or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def _subscribed_everywhere(app_url: str, workers: int, timeout: float = 30.0) -> bool:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {}
        with ThreadPoolExecutor(max_workers=8) as pool:
            for doc in pool.map(lambda _: requests.get(app_url + "/health/cache/", timeout=10).json(), range(16)):
                seen[doc["pid"]] = doc["subscription"]["subscribed"]
        if len(seen) >= workers and all(seen.values()):
            return True
        time.sleep(0.5)
    return False


def _worker_cpu_seconds(app: Service) -> float:
    """user + sys CPU seconds of the web server's workers alive now (/proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _worker_pids(app):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / tick


def _per_pid_health(app_url: str, workers: int, timeout: float = 30.0) -> dict[int, dict]:
    """/health/cache/ of every worker (concurrent bursts until each pid answered)."""
    import requests

    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < workers and time.monotonic() < deadline:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for doc in pool.map(lambda _: requests.get(app_url + "/health/cache/", timeout=10).json(), range(16)):
                seen[doc["pid"]] = doc
    return seen


def _l1_flushes(app_url: str) -> float:
    """newsite_cache_invalidations_total{kind="l1_flush"}, summed over the server's processes."""
    import requests

    total = 0.0
    for line in requests.get(app_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("newsite_cache_invalidations_total{") and 'kind="l1_flush"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- The scenario -----------------------------------------------------------------------------


def _token(env: dict) -> str:
    code = ("import django; django.setup()\n"
            "from django.contrib.auth import get_user_model\n"
            "from rest_framework.authtoken.models import Token\n"
            "u, _ = get_user_model().objects.get_or_create(username='bench-faults', defaults={'is_staff': True})\n"
            "u.is_staff = True; u.is_superuser = True; u.save()\n"
            "print(Token.objects.get_or_create(user=u)[0].key)")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True, timeout=120).stdout.strip().splitlines()[-1]


def _send_redrive(env: dict) -> None:
    code = "import django; django.setup(); from cdn.tasks import purge_outbox_redrive as t; t.delay()"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=60)


@dataclass
class Run:
    """One faults run: the stack, the load and where the figures go."""

    ctx: object
    out: dict
    timeline: Timeline
    readers: Readers
    writer: Writer
    app: Service
    edge: Service
    cache: Service
    env: dict  # the app's environment (REDIS_URL of `cache`, the broker, no CDN settings)
    paths: list[str]  # what the readers GET, on any server
    fault_s: float
    recovery_s: float

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge.port}"

    @property
    def dsn(self) -> str:
        return self.ctx.opts.database_url

    def mixed(self) -> list[tuple[str, str]]:
        """Every path through the app, then through the edge (reader threads alternate)."""
        return [pair for p in self.paths for pair in (("app", self.app_url + p), ("edge", self.edge_url + p))]

    def checks(self, label: str, since: int, start: float, end: float) -> dict:
        """After a window's recovery: the outbox rows of the window delivered, every worker
        subscribed, the edited articles read everywhere (the writer paused meanwhile)."""
        writer = self.writer
        writer.pause()  # the checks compare with PostgreSQL: no edit in between
        _send_redrive(self.env)  # what the beat does every 30 s
        delivered = _wait_delivered(self.dsn, since, 120)
        subscribed = _subscribed_everywhere(self.app_url, self.ctx.opts.workers)
        stale = _stale(self.app_url, self.edge_url, writer.ids, _db_titles(self.dsn, writer.ids))
        writer.paused.clear()
        return {"fault": label, "seconds": round(end - start, 1),
                "during": self.timeline.between(int(start) + 1, int(end)),
                "edits": sum(1 for w, _, s in writer.edits if w == label and s == 200),
                "edit_failures": sum(1 for w, _, s in writer.edits if w == label and s != 200),
                "outbox": delivered, "subscribed": subscribed, "stale": stale}

    def window(self, label: str, inject, recover, check_extra=None) -> None:
        since = _last_outbox_id(self.dsn)
        self.writer.label = label
        start = self.timeline.now()
        inject()
        time.sleep(self.fault_s)
        end = self.timeline.now()
        recover()
        self.writer.label = f"after {label}"
        time.sleep(self.recovery_s)
        self.timeline.windows.append((label, start, end))
        row = self.checks(label, since, start, end)
        if check_extra:
            row.update(check_extra())
        self.out["rows"].append(row)
        log(f"faults: {label}: {json.dumps(row, default=str)}")


def run(ctx) -> None:
    opts = ctx.opts
    out = {"status": "ok", "rows": [], "windows": [], "redis_vs_l2_off": None}
    ctx.data["faults"] = out
    if ctx.data.get("reason") or not shutil.which("redis-server") or not shutil.which("varnishd"):
        out["status"] = f"n/a: {ctx.data.get('reason') or 'redis-server and varnishd are needed'}"
        return
    fault_s = 5.0 if opts.smoke else FAULT_SECONDS
    recovery_s = 5.0 if opts.smoke else RECOVERY_SECONDS
    out["fault_seconds"] = fault_s
    hot = [int(x) for x in (ctx.stack.workdir / "zipf-ids.txt").read_text().split()[:200]]
    edited = hot[1:1 + EDITED]

    cache, broker = _redis(ctx, "cache"), _redis(ctx, "broker")
    env = {**ctx.env, "REDIS_URL": f"redis://127.0.0.1:{cache.port}/0",
           "CELERY_BROKER_URL": f"redis://127.0.0.1:{broker.port}/0", "CDN_OUTBOX_BACKOFF_BASE": "0.5"}
    for name in ("VARNISH_PURGE_URL", "FASTLY_SERVICE_ID", "CLOUDFLARE_ZONE_ID"):
        env.pop(name, None)
    token = _token(env)

    app = _web(ctx, env, opts.workers)
    edge = _varnish(ctx, app.port)
    worker_env = {**env, "VARNISH_PURGE_URL": f"http://127.0.0.1:{edge.port}/"}
    state = {"celery": _celery(ctx, worker_env)}
    paths = [f"/api/articles/{i}/" for i in hot[:50]] + [f"/api/articles/{i}/" for i in edited] * 3 + ["/api/articles/?page=1"]
    timeline = Timeline()
    faults = Run(ctx=ctx, out=out, timeline=timeline, readers=None, writer=None, app=app, edge=edge, cache=cache,
                 env=env, paths=paths, fault_s=fault_s, recovery_s=recovery_s)
    faults.readers = Readers(faults.mixed(), timeline).start()
    faults.writer = Writer(faults.app_url, token, edited).start()

    try:
        time.sleep(recovery_s)  # steady state first
        out["steady"] = timeline.between(1, int(timeline.now()))
        if "redis" in opts.faults:
            _redis_row(faults)
        if "snapshot" in opts.faults:
            _snapshot_row(faults)
        if "broker" in opts.faults:
            faults.window("broker + worker kill -9", broker.stop,
                          lambda: _broker_then_kill(ctx, broker, state, worker_env, env))
        if "varnish" in opts.faults:
            faults.window("varnish", edge.stop, lambda: edge.start("/bench/floor/"))
        pids_before = {}

        def kill_web_worker():
            pids = _worker_pids(app)
            pids_before["pids"] = pids
            if pids:
                os.kill(pids[0], signal.SIGKILL)

        def metrics_check():
            import requests

            response = requests.get(faults.app_url + "/metrics", timeout=10)
            return {"metrics_status": response.status_code,
                    "respawned": len(set(_worker_pids(app)) - set(pids_before.get("pids", [])[:1])) >= opts.workers}

        if "worker" in opts.faults:
            faults.window("web worker kill -9", kill_web_worker, lambda: None, metrics_check)
        if "postgresql" in opts.faults:
            _postgresql_row(faults, PG_FAULT_SECONDS if not opts.smoke else fault_s)
    finally:
        faults.writer.stop()
        faults.readers.stop()
        out["timeline"] = {s: dict(v) for s, v in sorted(timeline.bins.items())}
        out["windows"] = timeline.windows
        out["baselines"] = timeline.baselines
        for service in (state["celery"], edge, app, broker, cache):
            service.stop()
    out["png"] = _chart(out, Path(opts.out_dir), opts.scenario_name)
    (ctx.stack.workdir / "faults.json").write_text(json.dumps(out, default=str))


def _measure(timeline: Timeline, server: Service, tier: str, seconds: float) -> dict:
    """`seconds` of the load on `server` (the readers already pointed at it): req/s, answers by
    kind, and the workers' user+sys CPU time per request over exactly that span."""
    cpu0, n0, t0 = _worker_cpu_seconds(server), timeline.running(), time.monotonic()
    time.sleep(seconds)
    cpu1, n1, t1 = _worker_cpu_seconds(server), timeline.running(), time.monotonic()
    kinds = {k.split(":", 1)[1]: n1.get(k, 0) - n0.get(k, 0) for k in n1 if k.startswith(tier + ":")}
    answers = sum(kinds.values())
    cpu = cpu1 - cpu0
    return {"tier": tier, "seconds": round(t1 - t0, 1), "requests": answers, "req_s": answers / (t1 - t0),
            "cpu_s": round(cpu, 2), "cpu_ms_per_req": 1000 * cpu / answers if answers else None, **kinds}


def _redis_row(run: Run) -> None:
    """Redis killed for fault_s, restarted empty, against "L2 disabled" like-for-like: a second
    web server (same server, workers and threads, CACHE_L2_ENABLED=false) and the stack's take
    the load in turns, SLICES slices of fault_s / SLICES each: one on the L2-disabled server
    before the kill, then, during the outage, the stack's server and the L2-disabled one
    alternating (outage first). The same reader threads (retargeted, never restarted) and the
    same writer follow the load. Ratio: req/s of the outage slices over req/s of the L2-disabled
    slices, so the machine's drift (other processes) falls on both alike."""
    timeline, readers, writer = run.timeline, run.readers, run.writer
    since = _last_outbox_id(run.dsn)
    l2off = _web(run.ctx, {**run.env, "CACHE_L2_ENABLED": "false"}, run.ctx.opts.workers)
    l2off_url = f"http://127.0.0.1:{l2off.port}"
    targets = {"l2off": (l2off, l2off_url, [("l2off", l2off_url + p) for p in run.paths], "L2 disabled"),
               "app": (run.app, run.app_url, [("app", run.app_url + p) for p in run.paths], "redis")}
    slice_s = run.fault_s / SLICES
    slices = []

    def measured(tier: str, phase: str) -> None:
        server, url, urls, label = targets[tier]
        readers.retarget(urls)
        writer.base_url, writer.label = url, label
        begun = timeline.now()
        slices.append({"phase": phase, **_measure(timeline, server, tier, slice_s)})
        if tier == "l2off":
            timeline.baselines.append(("L2 disabled", begun, timeline.now()))

    try:
        readers.retarget(targets["l2off"][2])
        time.sleep(WARM_SECONDS)
        measured("l2off", "before the kill")
        run.cache.kill()
        start = timeline.now()
        for i in range(SLICES):
            measured("app" if i % 2 == 0 else "l2off", "outage")
        end = timeline.now()
        timeline.windows.append(("redis", start, end))
        run.cache.start()  # empty: it saved nothing
    finally:
        readers.retarget(run.mixed())
        writer.base_url, writer.label = run.app_url, "after redis"
        l2off.stop()
    time.sleep(run.recovery_s)
    row = run.checks("redis", since, start, end)
    totals = {tier: _sum_slices([s for s in slices if s["tier"] == tier]) for tier in ("app", "l2off")}
    base = totals["l2off"]["req_s"]
    row["vs_l2_off"] = totals["app"]["req_s"] / base if base else None
    row["during"]["app_req_s"] = totals["app"]["req_s"]  # over its slices (the window is shared with l2off)
    run.out["redis_vs_l2_off"] = {"slices": slices, "outage": totals["app"], "l2off": totals["l2off"],
                                  "ratio": row["vs_l2_off"]}
    run.out["rows"].append(row)
    log(f"faults: redis vs L2 disabled: {json.dumps(run.out['redis_vs_l2_off'], default=str)}")
    log(f"faults: redis: {json.dumps(row, default=str)}")


def _sum_slices(slices: list[dict]) -> dict:
    seconds = sum(s["seconds"] for s in slices)
    answers = sum(s["requests"] for s in slices)
    cpu = sum(s["cpu_s"] for s in slices)
    return {"slices": len(slices), "seconds": round(seconds, 1), "requests": answers,
            "req_s": answers / seconds if seconds else 0.0, "cpu_s": round(cpu, 2),
            "cpu_ms_per_req": 1000 * cpu / answers if answers else None,
            **{k: sum(s.get(k, 0) for s in slices) for k in ("s5xx", "s503", "errors")}}


def _snapshot_row(run: Run) -> None:
    """Redis SAVEs, the writer edits for fault_s (invalidations the snapshot does not hold),
    then Redis is killed and restarted from that RDB: its sequence and L2 are back in the past.
    Counted: L1 clears per worker (/health/cache/) and l1_flush (/metrics), and the edited
    articles read everywhere 1 s after the restart (the writer paused from the kill on)."""
    import redis

    workers, timeline, writer = run.ctx.opts.workers, run.timeline, run.writer
    label = "redis from an older snapshot"
    since = _last_outbox_id(run.dsn)
    clears_before = {pid: doc["l1"]["clears"] for pid, doc in _per_pid_health(run.app_url, workers).items()}
    flushes_before = _l1_flushes(run.app_url)
    writer.label = label
    start = timeline.now()
    redis.Redis(port=run.cache.port).execute_command("SAVE")
    time.sleep(run.fault_s)  # edits after the snapshot
    writer.pause()
    end = timeline.now()
    run.cache.kill()
    run.cache.start()  # loads dump.rdb from its --dir: the state of the SAVE
    back = time.monotonic()
    timeline.windows.append((label, start, end))
    time.sleep(max(0.0, 1.0 - (time.monotonic() - back)))
    stale_1s = _stale(run.app_url, run.edge_url, writer.ids, _db_titles(run.dsn, writer.ids))
    health = _per_pid_health(run.app_url, workers)
    clears = {pid: doc["l1"]["clears"] - clears_before.get(pid, 0) for pid, doc in health.items()}
    flushes = _l1_flushes(run.app_url) - flushes_before
    (run.ctx.stack.workdir / "faults-cache" / "dump.rdb").unlink(missing_ok=True)  # later restarts: empty
    writer.label = f"after {label}"
    writer.paused.clear()
    time.sleep(run.recovery_s)
    row = run.checks(label, since, start, end)
    row.update({"stale_1s": stale_1s, "l1_clears": clears, "l1_flushes": flushes,
                "every_l1_cleared": len(clears) >= workers and all(n >= 1 for n in clears.values())})
    run.out["rows"].append(row)
    log(f"faults: {label}: {json.dumps(row, default=str)}")


def _broker_then_kill(ctx, broker: Service, state: dict, worker_env: dict, env: dict) -> None:
    """Broker back; then the worker is killed (SIGKILL) as soon as it has a drain in hand (a
    re-drive sent for the window's rows), and a new worker is started."""
    broker.start()
    _send_redrive(env)
    log_path = state["celery"].proc.log
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "purge_outbox_redrive" not in log_path.read_text(errors="replace"):
        time.sleep(0.05)
    state["celery"].kill()
    state["celery"] = _celery(ctx, worker_env)


def _server_latency(app_url: str, statuses=("5xx", "2xx")) -> dict[str, dict[str, float]]:
    """newsite_http_request_duration_seconds buckets of GET responses, by status class ("5xx",
    "2xx") -> le -> count, on every endpoint, summed over the server's processes: one /metrics
    scrape (a multiprocess scrape costs the measured server a worker's time)."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[str, float]] = {status: defaultdict(float) for status in statuses}
    text = requests.get(app_url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            status = sample.labels.get("status")
            if (sample.name == "newsite_http_request_duration_seconds_bucket" and status in out
                    and sample.labels.get("method") == "GET"):
                out[status][sample.labels["le"]] += sample.value
    return {status: dict(buckets) for status, buckets in out.items()}


def _slow_answers_by_second(url: str, before: dict[str, dict[str, float]], start: float, timeline: Timeline,
                            fault_s: float) -> dict[int, list[int]]:
    """Sleep out the outage, reading the server's 5xx and 2xx histograms once a second: second of
    the outage (1: the first) -> [5xx answers completed in it, of them slower than SLOW_503_MS,
    2xx answers, of them slower], so a tail of the 503s can be told apart as the onset's
    (requests in flight at the stop), the half-open probes' (every DB_BREAKER_RESET) or the
    machine's (spread evenly, and the cached 200s of the same seconds, which never touch the
    database, have it too)."""
    le = f"{SLOW_503_MS / 1000:g}"
    out: dict[int, list[int]] = {}
    last = before
    while timeline.now() - start < fault_s:
        time.sleep(max(0.0, min(1.0, fault_s - (timeline.now() - start))))
        now = _server_latency(url)
        counts = []
        for status in ("5xx", "2xx"):
            total = now[status].get("+Inf", 0.0) - last[status].get("+Inf", 0.0)
            fast = now[status].get(le, 0.0) - last[status].get(le, 0.0)
            counts += [int(total), int(total - fast)]
        out[int(timeline.now() - start)] = counts
        last = now
    return out


def _postgresql_row(run: Run, fault_s: float) -> None:
    """PostgreSQL stopped for fault_s under load, on a private cluster (the machine's own is
    shared): a web server like the stack's on it, its L2 in db PG_REDIS_DB of
    the cache server. Before the fault the readers take PG_CACHED articles (cached in L2 and
    every worker's L1) and the writer edits some of them; at the stop, the readers alternate
    those with articles never read (each a miss that needs the database). Must hold: cached URLs
    200, the others 503 with Retry-After (latency percentiles), nothing else; no cache key that
    would have outlived the outage deleted; after the restart, the edits of the window readable
    everywhere."""
    import redis
    import requests

    from bench.pgserver import FAST, PG_BINS, private_cluster

    label = "postgresql"
    if not PG_BINS:
        run.out["postgresql"] = {"status": "n/a: PostgreSQL server binaries not installed"}
        return
    ctx, timeline, readers, writer = run.ctx, run.timeline, run.readers, run.writer
    with private_cluster(free_port(), prefix="newsite-bench-pg-") as pg:
        env = {**run.env, "DATABASE_URL": pg.url(), "CACHE_KEY_PREFIX": "faults-pg",
               "REDIS_URL": f"redis://127.0.0.1:{run.cache.port}/{PG_REDIS_DB}",
               # drain tasks of its outbox go to a broker db no worker reads (it has no CDN)
               "CELERY_BROKER_URL": run.env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + f"/{PG_REDIS_DB}"}
        for command in (["migrate", "-v", "0"], ["seed_demo", "--articles", str(PG_ARTICLES)]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=600,
                           capture_output=True)
        ids = [row[0] for row in pg.query(
            "SELECT id FROM articles_article WHERE status = 'published' AND published_at <= now() ORDER BY id")]
        cached, cold = ids[:PG_CACHED], ids[PG_CACHED:]
        token = _token(env)
        app = _web(ctx, env, ctx.opts.workers)
        url = f"http://127.0.0.1:{app.port}"
        saved = (writer.base_url, writer.token, writer.ids)
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:  # L2 and (bursts: every worker) each L1
                list(pool.map(lambda i: requests.get(f"{url}/api/articles/{i}/", timeout=10), cached * 8))
            readers.retarget([("pgcached", f"{url}/api/articles/{i}/") for i in cached])
            writer.base_url, writer.token, writer.ids, writer.label = url, token, cached[:EDITED], label
            time.sleep(run.recovery_s / 3)
            # No edit from the key scan to the stop: an edit rightly deletes its article's entries,
            # which would read as keys the outage deleted.
            writer.pause()
            l2 = redis.Redis(port=run.cache.port, db=PG_REDIS_DB)
            keys = list(l2.scan_iter(count=1000))
            with l2.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pttl(key)
                ttls = pipe.execute()
            # -1: no expiry; a key that would have expired during the outage anyway is not counted
            lasting = [k for k, t in zip(keys, ttls, strict=True) if t == -1 or t > 1000 * (fault_s + 10)]
            server_before = _server_latency(url)
            timeline.record_latencies()
            pg.stop()
            start = timeline.now()
            writer.paused.clear()  # its edits of the outage fail (503): nothing commits
            # Only now the URLs never read (read while the database still answered, one would be
            # cached). The cached URLs read are those the writer does not edit: an edit deletes
            # its article's entries (as it must), and one made just before the stop leaves that
            # article uncached for the outage, its readers answered 503 like a URL never read.
            steady = cached[EDITED:]
            readers.retarget([pair for i, cold_id in enumerate(cold) for pair in (
                ("pgcached", f"{url}/api/articles/{steady[i % len(steady)]}/"), ("pgcold", f"{url}/api/articles/{cold_id}/"))])
            slow_by_second = _slow_answers_by_second(url, server_before, start, timeline, fault_s)
            with l2.pipeline(transaction=False) as pipe:
                for key in lasting:
                    pipe.exists(key)
                deleted = sum(1 for n in pipe.execute() if not n)
            end = timeline.now()
            latencies = timeline.take_latencies()
            server_after = _server_latency(url)
            server_503, server_200 = ({le: n - server_before[status].get(le, 0.0)
                                       for le, n in server_after[status].items()} for status in ("5xx", "2xx"))
            pg.start(*FAST)
            back = time.monotonic()
            probe = f"{url}/api/articles/{cold[-1]}/"
            while time.monotonic() - back < 60:
                try:
                    if requests.get(probe, timeout=10).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            recovered_s = time.monotonic() - back
            timeline.windows.append((label, start, end))
            writer.label = f"after {label}"
            time.sleep(run.recovery_s)
            writer.pause()
            edited = cached[:EDITED]
            titles = dict(pg.query("SELECT id, title FROM articles_article WHERE id = ANY(%s)", params=(edited,)))
            stale = _stale(url, None, edited, titles)
        finally:
            readers.retarget(run.mixed())
            writer.base_url, writer.token, writer.ids = saved
            writer.label = "end"
            writer.paused.clear()
            app.stop()
    during = timeline.between(int(start) + 1, int(end))

    def pct(values):
        return {f"p{q}": percentile(values, q) for q in (50, 95, 99)} | {"max": max(values, default=float("nan")),
                                                                          "n": len(values)}

    result = {
        "status": "ok", "seconds": round(end - start, 1), "recovered_s": round(recovered_s, 2),
        "cached": {k.split(":", 1)[1]: v for k, v in during.items() if k.startswith("pgcached:")},
        "cold": {k.split(":", 1)[1]: v for k, v in during.items() if k.startswith("pgcold:")},
        "cached_req_s": during["pgcached_req_s"], "cold_req_s": during["pgcold_req_s"],
        "latency_503_ms": pct(latencies.get("pgcold:s503", [])),
        "latency_cached_ms": pct(latencies.get("pgcached:ok", [])),
        "keys_lasting": len(lasting), "keys_deleted": deleted,
        # server-side (the first middleware's histogram, from request to response): le -> 5xx count
        "server_5xx_buckets": server_503,
        "server_2xx_buckets": server_200,  # the control: the cached answers, which need no database
        # second of the outage -> [5xx answered in it, of them slower than SLOW_503_MS, 2xx, slower]
        "server_by_second": slow_by_second,
    }
    run.out["postgresql"] = result
    edits = [(w, st) for w, _, st in writer.edits if w in (label, f"after {label}")]
    row = {"fault": label, "seconds": result["seconds"],
           "during": {"app_req_s": result["cached_req_s"] + result["cold_req_s"], "edge_req_s": 0,
                      **{f"app:{kind}": during.get(f"pgcached:{kind}", 0) + during.get(f"pgcold:{kind}", 0)
                         for kind in ("ok", "s503", "s503_bare", "s5xx", "errors")}},
           "edits": sum(1 for w, st in edits if st == 200),
           "edit_failures": sum(1 for w, st in edits if st != 200),
           "outbox": None, "subscribed": True, "stale": stale}
    run.out["rows"].append(row)
    log(f"faults: {label}: {json.dumps(result, default=str)} {json.dumps(row, default=str)}")


def _chart(out: dict, out_dir: Path, name: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    seconds = sorted(out["timeline"])
    if not seconds:
        return None
    bins = out["timeline"]

    def series(tier, kinds):
        return [sum(bins[s].get(f"{tier}:{k}", 0) for k in kinds) for s in seconds]

    every = ("ok", "s503", "s503_bare", "s5xx", "errors")
    app_total, edge_total, l2off_total = series("app", every), series("edge", every), series("l2off", every)
    pg_total = [a + b for a, b in zip(series("pgcached", every), series("pgcold", every), strict=True)]
    total = [sum(v) for v in zip(app_total, edge_total, l2off_total, pg_total, strict=True)]

    def share(values):
        return [v / max(1, t) for v, t in zip(values, total, strict=True)]

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    ax1.plot(seconds, app_total, color="tab:blue", linewidth=2.5, label="req/s through the app")
    ax1.plot(seconds, edge_total, color="tab:green", linestyle="--", label="req/s through the edge")
    ax1.plot(seconds, l2off_total, color="gray", linestyle=":", linewidth=2,
             label="req/s through the L2-disabled server (the Redis row's baseline)")
    ax1.plot(seconds, pg_total, color="tab:olive", linewidth=2, label="req/s through the PostgreSQL row's server")
    ax2.plot(seconds, share([sum(v) for v in zip(*(series(t, ("s5xx", "s503_bare")) for t in ("app", "l2off", "pgcached", "pgcold")),
                                                 strict=True)]),
             color="tab:red", label="app 5xx other than 503 (or a 503 without Retry-After)")
    ax2.plot(seconds, share(series("pgcold", ("s503",))), color="tab:olive",
             label="PostgreSQL row: 503 + Retry-After (URLs never cached)")
    ax2.plot(seconds, share(series("app", ("errors",))), color="tab:purple", label="app: no answer")
    ax2.plot(seconds, share(series("edge", ("errors", "s5xx"))), color="tab:brown", label="edge: no answer or 5xx")
    ax2.plot(seconds, share(series("app", ("s503",))), color="tab:orange", label="app 503")
    for label, start, end in out["windows"]:
        for ax in (ax1, ax2):
            ax.axvspan(start, end, color="tab:red", alpha=0.12)
        ax1.text(start, 1.02, label, fontsize=8, transform=ax1.get_xaxis_transform())
    for _label, start, end in out.get("baselines", []):
        for ax in (ax1, ax2):
            ax.axvspan(start, end, color="gray", alpha=0.12)
    ax1.set_ylabel("req/s")
    ax2.set_ylabel("share of answers")
    ax2.set_xlabel("seconds")
    ax1.legend(fontsize=8, loc="lower right")
    ax2.legend(fontsize=8, loc="upper right")
    fig.suptitle("newsite faults: load during each fault window (red) and the L2-disabled baseline (grey)", y=0.995)
    fig.tight_layout()
    path = out_dir / f"{time.strftime('%Y-%m-%d', time.gmtime())}-{name}-timeline.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
