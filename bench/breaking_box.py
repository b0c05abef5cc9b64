"""The breaking box's two designs side by side (issue 31; docs/breaking-box.md):

  poll  every open page GETs /api/breaking-news/ through Varnish every INTERVAL s with
        If-None-Match (articles/static/articles/breaking-box.js does the same)
  sse   every open page holds GET /api/breaking-news/stream/ (articles/breaking_stream.py) open
        through Varnish (piped), fed by the invalidation bus

One origin (granian --interface asgi bench.breaking_asgi:application, one worker) on the
database and Redis of the environment (DATABASE_URL, REDIS_URL, CACHE_KEY_PREFIX), Varnish with
deploy/varnish/default.vcl in front, purged by the write path (VARNISH_PURGE_URL, eager Celery).
N simulated pages (one asyncio client process, a keep-alive connection each: Conn). For each design: origin requests per
second through the edge in a quiet window (varnishstat MAIN.backend_req, MAIN.s_pipe), RSS of the
origin and of Varnish before and with the pages open (the delta per page), then PUBLISHES breaking
stories posted to the API: publish -> box updated, per page, p50/p99/max, from the moment the POST
was sent. Every loop is bounded in count and time.

    .venv/bin/python -m bench.breaking_box --pages 10000 --design poll --design sse

Writes a JSON summary to stdout (and --out); bench/results/2026-12-07-breaking-box.md reads it.
The fd limit of this machine (20,000 a process) lets one Varnish pipe at most ~9,990 streams
(two descriptors each): the sse design spreads pages over --edges Varnish instances.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu
from bench.stack import free_port, point_vcl_backend, wait_http

ROOT = Path(__file__).resolve().parents[1]
VCL = ROOT / "deploy" / "varnish" / "default.vcl"
BOX = "/api/breaking-news/"
# Varnish counters reported over the quiet window (why the origin saw what it saw).
EDGE_COUNTERS = ("MAIN.cache_hit", "MAIN.cache_hit_grace", "MAIN.cache_miss", "MAIN.cache_hitmiss", "MAIN.busy_sleep",
                 "MAIN.fetch_failed", "MAIN.backend_fail", "MAIN.sess_queued", "MAIN.sess_dropped",
                 "MAIN.threads_limited", "MAIN.bgfetch_no_thread", "MAIN.s_fetch")
STREAM = "/api/breaking-news/stream/"


def rss_kib(pid: int) -> int:
    """RSS of a process and its descendants (KiB), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return total


def threads_of(pid: int) -> int:
    """Threads of a process and its descendants."""
    return sum(len(cpu.read_threads(p.pid)) for p in cpu.tree(cpu.read_all(), pid).values())


def cpu_of(roots: dict[str, int]) -> cpu.CpuSnapshot:
    return cpu.CpuSnapshot.take(roots)


class Edge:
    def __init__(self, backend_port: int, workdir: Path, name: str, threads: int):
        self.port, self.admin = free_port(), free_port()
        self.dir = workdir / name
        self.dir.mkdir()
        self.dir.chmod(0o755)
        vcl = self.dir / "box.vcl"
        vcl.write_text(point_vcl_backend(VCL.read_text(), backend_port))
        self.log = (self.dir / "varnishd.log").open("wb")
        self.proc = subprocess.Popen(
            ["varnishd", "-F", "-j", "none", "-n", str(self.dir / "n"), "-a", f"127.0.0.1:{self.port}",
             "-T", f"127.0.0.1:{self.admin}", "-f", str(vcl), "-s", "malloc,64m",
             "-p", "default_grace=10", "-p", "thread_pools=2", "-p", f"thread_pool_max={threads}",
             "-p", "thread_pool_min=50", "-p", "pipe_timeout=120",
             # A browser keeps its connection between polls; Varnish's default 5 s idle timeout
             # would close it before the next poll.
             "-p", "timeout_idle=30"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        until = time.monotonic() + 30
        while True:  # listening (the origin starts after its edges: they answer 503 until then)
            if self.proc.poll() is not None or time.monotonic() > until:
                raise RuntimeError(f"varnishd did not start: {(self.dir / 'varnishd.log').read_text()[-500:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stat(self, *fields: str) -> dict:
        out = subprocess.run(["varnishstat", "-n", str(self.dir / "n"), "-1", "-j", *sum((["-f", f] for f in fields), [])],
                             capture_output=True, text=True, timeout=20).stdout
        data = json.loads(out)
        counters = data.get("counters", data)
        return {k: v["value"] for k, v in counters.items() if isinstance(v, dict) and "value" in v}

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def editor_token() -> tuple[str, int]:
    """A staff user's DRF token and a category id (created once in this database)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")
    django.setup()
    from django.contrib.auth.models import Permission, User
    from rest_framework.authtoken.models import Token

    from articles.models import Author, Category

    user, _ = User.objects.get_or_create(username="bench-box-editor", defaults={"is_staff": True})
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="articles"))
    Author.objects.get_or_create(user=user, defaults={"name": "Bench Desk"})
    category, _ = Category.objects.get_or_create(slug="bench-box", defaults={"name": "Bench box"})
    token, _ = Token.objects.get_or_create(user=user)
    return token.key, category.pk


# --- the simulated pages ----------------------------------------------------------------------


class Pages:
    def __init__(self, n: int):
        self.n = n
        self.seen: list[dict[int, float]] = [{} for _ in range(n)]  # page -> {article id: when seen}
        self.requests = 0
        self.not_modified = 0
        self.errors = 0
        self.connected = 0
        self.stop = asyncio.Event()
        self.lags: list[float] = []

    def saw(self, page: int, body: bytes) -> None:
        now = time.monotonic()
        seen = self.seen[page]
        for item in json.loads(body).get("results", ()):
            seen.setdefault(item["id"], now)


class Conn:
    """One page's HTTP/1.1 keep-alive connection to its edge (asyncio streams: a few tens of
    microseconds a poll, where an aiohttp request costs ~10x that and 10,000 pages starve the loop)."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, path: str, headers: dict) -> tuple[int, dict]:
        if self.writer is None:
            await self.open()
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        return int(status_line.split()[1]), fields


async def poll_page(pages: Pages, port: int, page: int, interval: float, deadline: float) -> None:
    conn, etag = Conn(port), None
    await asyncio.sleep(random.uniform(0, interval))
    while not pages.stop.is_set() and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            status, fields = await asyncio.wait_for(conn.request(BOX, {"If-None-Match": etag} if etag else {}), 30)
            body = await conn.reader.readexactly(int(fields.get("content-length", 0)))
            pages.requests += 1
            if status == 200:
                etag = fields.get("etag")
                pages.saw(page, body)
            elif status == 304:
                pages.not_modified += 1
            else:
                pages.errors += 1
            if fields.get("connection", "").lower() == "close":
                conn.close()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            pages.errors += 1
            conn.close()
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    conn.close()


async def sse_page(pages: Pages, port: int, page: int, deadline: float) -> None:
    attempts = 0
    while not pages.stop.is_set() and time.monotonic() < deadline and attempts < 5:
        attempts += 1
        conn = Conn(port)
        try:
            status, _ = await asyncio.wait_for(conn.request(STREAM, {}), 120)
            if status != 200:
                pages.errors += 1
                conn.close()
                await asyncio.sleep(1 + random.random())
                continue
            pages.connected += 1
            try:
                while not pages.stop.is_set():
                    line = await conn.reader.readline()
                    if not line:
                        break
                    if line.startswith(b"data: "):
                        pages.saw(page, line[6:])
            finally:
                pages.connected -= 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            pages.errors += 1
            await asyncio.sleep(1 + random.random())
        finally:
            conn.close()


def publish(origin: str, token: str, category: int, title: str) -> tuple[int, float, float]:
    """POST a breaking story to the API (in a thread of its own: the pages' event loop may lag)."""
    import requests

    sent = time.monotonic()
    response = requests.post(origin + "/api/articles/", json={
        "title": title, "excerpt": "Bench breaking story.", "body": "Bench.", "category_id": category,
        "status": "published", "is_breaking": True,
    }, headers={"Authorization": f"Token {token}"}, timeout=60)
    if response.status_code != 201:
        raise RuntimeError(f"publish: {response.status_code} {response.text[:300]}")
    return response.json()["id"], sent, time.monotonic()


async def loop_lag(pages: Pages) -> None:
    """The client's own delay (its event loop's lag, sampled every 0.1 s): part of every latency."""
    while not pages.stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.1)
        pages.lags.append(time.monotonic() - before - 0.1)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_design(design: str, args, origin_proc, origin_url: str, edges: list[Edge], token: str, category: int) -> dict:
    n = args.pages
    pages = Pages(n)
    deadline = time.monotonic() + args.max_seconds
    origin_rss0, edge_rss0 = rss_kib(origin_proc.pid), sum(rss_kib(e.proc.pid) for e in edges)
    stat0 = [e.stat("MAIN.backend_req", "MAIN.backend_conn", "MAIN.client_req") for e in edges]
    client_rss0 = rss_kib(os.getpid())
    tasks = [asyncio.create_task(loop_lag(pages))]
    for page in range(n):
        edge = edges[page % len(edges)]
        if design == "poll":
            tasks.append(asyncio.create_task(poll_page(pages, edge.port, page, args.interval, deadline)))
        else:
            tasks.append(asyncio.create_task(sse_page(pages, edge.port, page, deadline)))
            if page % 200 == 199:
                await asyncio.sleep(0.05)  # open the streams over a few seconds, as readers arrive
    # Settle: every page has polled once / every stream is open.
    settle_until = time.monotonic() + (args.interval + 5 if design == "poll" else 120)
    while time.monotonic() < settle_until:
        if design == "sse" and pages.connected >= n:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    # Quiet window: origin requests per second and memory with every page open.
    stat1 = [e.stat("MAIN.backend_req", "MAIN.backend_conn", "MAIN.client_req", *EDGE_COUNTERS) for e in edges]
    roots = {"origin": origin_proc.pid, **{f"edge{i}": e.proc.pid for i, e in enumerate(edges)}}
    cpu1, t1 = cpu_of(roots), time.monotonic()
    answers1 = (pages.requests, pages.not_modified)
    await asyncio.sleep(args.window)
    stat2 = [e.stat("MAIN.backend_req", "MAIN.backend_conn", "MAIN.client_req", *EDGE_COUNTERS) for e in edges]
    cpu2, t2 = cpu_of(roots), time.monotonic()
    used = cpu.delta(cpu1, cpu2)
    origin_rss1, edge_rss1 = rss_kib(origin_proc.pid), sum(rss_kib(e.proc.pid) for e in edges)
    answers2 = (pages.requests, pages.not_modified)
    edge_threads = sum(threads_of(e.proc.pid) for e in edges)
    connected = pages.connected
    quiet = {
        "seconds": round(t2 - t1, 1),
        "origin_req_per_s": round(sum(b["MAIN.backend_req"] - a["MAIN.backend_req"] for a, b in zip(stat1, stat2, strict=True)) / (t2 - t1), 3),
        "edge_req_per_s": round(sum(b["MAIN.client_req"] - a["MAIN.client_req"] for a, b in zip(stat1, stat2, strict=True)) / (t2 - t1), 1),
        "origin_cpu_s_per_s": round(used["origin"].seconds / (t2 - t1), 4),
        "edge_cpu_s_per_s": round(sum(d.seconds for name, d in used.items() if name != "origin") / (t2 - t1), 4),
        "polls": answers2[0] - answers1[0], "not_modified": answers2[1] - answers1[1],
        "edge_counters": {k.removeprefix("MAIN."): sum(b.get(k, 0) - a.get(k, 0) for a, b in zip(stat1, stat2, strict=True))
                          for k in EDGE_COUNTERS},
    }
    settle = {
        "origin_requests_while_opening": sum(b["MAIN.backend_req"] - a["MAIN.backend_req"] for a, b in zip(stat0, stat1, strict=True)),
        "backend_connections_opened": sum(b["MAIN.backend_conn"] - a["MAIN.backend_conn"] for a, b in zip(stat0, stat1, strict=True)),
    }
    # Publishes: each must reach every page; the next one starts when all saw it (or timeout).
    latencies, publishes = [], []
    for i in range(args.publishes):
        stat_p0 = [e.stat("MAIN.backend_req") for e in edges]
        article, sent, returned = await asyncio.to_thread(
            publish, origin_url, token, category, f"Bench breaking {design} {i} {time.time():.0f}")
        wait_until = time.monotonic() + (args.interval * 2 + 10 if design == "poll" else 30)
        while time.monotonic() < wait_until and sum(1 for s in pages.seen if article in s) < n:
            await asyncio.sleep(0.1)
        got = [s[article] - sent for s in pages.seen if article in s]
        stat_p1 = [e.stat("MAIN.backend_req") for e in edges]
        latencies.extend(got)
        publishes.append({
            "article": article, "post_ms": round((returned - sent) * 1000, 1), "pages_updated": len(got),
            "p50_s": round(pct(got, 0.5), 3), "p99_s": round(pct(got, 0.99), 3), "max_s": round(max(got), 3) if got else None,
            "origin_requests": sum(b["MAIN.backend_req"] - a["MAIN.backend_req"] for a, b in zip(stat_p0, stat_p1, strict=True)),
        })
        await asyncio.sleep(2)
    client_rss1 = rss_kib(os.getpid())
    pages.stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "design": design, "pages": n, "edges": len(edges), "interval_s": args.interval if design == "poll" else None,
        "streams_open": connected if design == "sse" else None,
        "quiet": quiet, "settle": settle,
        "memory_kib": {
            "origin_before": origin_rss0, "origin_open": origin_rss1,
            "origin_per_page_kib": round((origin_rss1 - origin_rss0) / n, 2),
            "edge_before": edge_rss0, "edge_open": edge_rss1, "edge_per_page_kib": round((edge_rss1 - edge_rss0) / n, 2),
            "edge_threads_open": edge_threads,
            "client_per_page_kib": round((client_rss1 - client_rss0) / n, 2),
        },
        "publish_to_box": {
            "samples": len(latencies), "expected": n * args.publishes,
            "p50_s": round(pct(latencies, 0.5), 3), "p99_s": round(pct(latencies, 0.99), 3),
            "max_s": round(max(latencies), 3) if latencies else None,
            "mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        },
        "publishes": publishes,
        "client": {"requests": pages.requests, "not_modified": pages.not_modified, "errors": pages.errors,
                   "loop_lag_p50_s": round(pct(pages.lags, 0.5), 3), "loop_lag_p99_s": round(pct(pages.lags, 0.99), 3)},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--design", action="append", choices=("poll", "sse"))
    parser.add_argument("--interval", type=float, default=10.0, help="poll interval (breaking-box.js: 10 s)")
    parser.add_argument("--window", type=float, default=30.0, help="quiet window for origin req/s (s)")
    parser.add_argument("--publishes", type=int, default=3)
    parser.add_argument("--edges", type=int, default=0, help="Varnish instances (default: poll 1, sse 2)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="hard bound of one design's run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    designs = args.design or ["poll", "sse"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    workdir = Path(tempfile.mkdtemp(prefix="bench-box-"))
    workdir.chmod(0o755)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
    token, category = editor_token()
    results = []
    for design in designs:
        n_edges = args.edges or (1 if design == "poll" else 2)
        # Varnish's default thread_pool_max (5,000 a pool) for polling (an idle keep-alive
        # connection holds no thread); a piped stream holds one, so the pools must hold them all.
        threads = 5000 if design == "poll" else max(5000, args.pages // n_edges + 500)
        env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "true", "DEBUG": "false"}
        env.pop("VARNISH_PURGE_URL", None)
        edges: list[Edge] = []
        origin = None
        try:
            # Edges need the origin's port and the origin the edges' purge URLs: fix the port first.
            origin_port = free_port()
            edges = [Edge(origin_port, workdir, f"{design}-edge{i}", threads) for i in range(n_edges)]
            env["VARNISH_PURGE_URL"] = ",".join(e.url for e in edges)
            origin = start_origin_on(env, workdir, origin_port, backpressure=args.pages + 1000)
            origin_url = f"http://127.0.0.1:{origin_port}"
            result = asyncio.run(run_design(design, args, origin, origin_url, edges, token, category))
            results.append(result)
            print(json.dumps(result), flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
        finally:
            for edge in edges:
                edge.stop()
            if origin is not None:
                stop(origin)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def start_origin_on(env: dict, workdir: Path, port: int, backpressure: int) -> subprocess.Popen:
    log = (workdir / f"origin-{port}.log").open("wb")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--no-ws", "--log-level", "warning", "--backlog", "4096",
         # Requests in progress per worker (default backlog/workers): an open stream is one, and
         # past the limit granian accepts nothing else (a publish would wait for a stream to end).
         "--backpressure", str(backpressure), "bench.breaking_asgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/robots.txt", timeout=60, proc=proc)
    return proc


if __name__ == "__main__":
    sys.exit(main())
