"""Scenario `l1sizes` (issue 29): how the cost of L1+L2 grows with the work. One granian per L1
size (CACHE_L1_MAX_ENTRIES of --l1-sizes, default 1k, 10k, 20k and 50k entries) and one L2-only
server as the reference, on the Zipf workload, alternating in slices like the throughput modes;
they share the L2 (one Redis db), each has its L1s.

An L1 holds what was asked within L1_TTL (30 s): at this machine's rates that is ~2,000 entries
per worker whatever the bound, so the servers here run with CACHE_L1_TTL=3600 (and a byte bound
of 16 KiB per entry: the default 64 MiB holds ~14,000 detail responses) and, after the
tiers are emptied and prewarmed, each is filled first: its --l1-sizes hottest Zipf ranks,
uniformly, about three requests per key (both workers see each key). After the measurements:
each server's worker RSS and L1 entries (/health/cache/ of the worker that answers)."""

import math
from pathlib import Path

import requests

from bench import loadgen, probes
from bench.context import Context, Result, log
from bench.loadgen import Workload
from bench.measure import Entry, drain, empty_tiers, prepare, prewarm, run_rounds
from bench.stack import AppServer, Unavailable

SHARED_SERVERS = None  # starts servers of its own
IN_ALL = False  # named only: `--scenario l1sizes`
L2_ONLY = "L2 only"
L1_TTL = 3600  # seconds: long enough that an L1 reaches its bound (see above)
L1_BYTES_PER_ENTRY = 16 * 1024  # the byte bound, so that the entry count is the one that binds
FILL_RATE = 2500  # requests per second a server answers while filled (sizes one fill round)
FILL_ROUNDS = 4


def label(size: int) -> str:
    return f"L1+L2, L1 {size // 1000}k" if size % 1000 == 0 else f"L1+L2, L1 {size}"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _workers(root: int) -> list[int]:
    """The app server's worker processes (children of the granian master)."""
    children = Path(f"/proc/{root}/task/{root}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def _memory(server: AppServer) -> dict:
    """RSS of each worker and the L1 entries / bytes of one of them (the one /health/cache/ hits)."""
    out = {"rss_kib": [_rss_kib(pid) for pid in _workers(server.proc.popen.pid)]}
    try:
        health = requests.get(server.base_url + "/health/cache/", timeout=10).json()
        l1 = health.get("l1") or {}
        out.update(entries=l1.get("entries"), l1_bytes=l1.get("bytes"))
    except (requests.RequestException, ValueError):
        pass
    return out


def _fill(ctx: Context, entries: list, sizes: dict) -> None:
    """Empty the tiers, prewarm L2 (--zipf-prewarm), then fill each sized server's L1s with its
    hottest ranks."""
    targets = [t for t in (prepare(ctx, "zipf", e) for e in entries) if not isinstance(t, str)]
    empty_tiers(ctx, targets)
    prewarm(ctx, targets)
    zipf = ctx.workloads["zipf"]
    ranked = zipf.ids_file.read_text().split()
    for t in targets:
        size = sizes.get(t.label)
        if not size:
            continue
        top = ctx.stack.workdir / f"zipf-top-{size}.txt"
        top.write_text("\n".join(ranked[:size]) + "\n")
        seconds, spent = math.ceil(3 * size / FILL_RATE) + 2, 0
        for _ in range(FILL_ROUNDS):  # until the worker asked holds ~its bound (the machine's rate varies)
            loadgen.run_wrk(ctx.wrk, t.base_url, Workload(f"top-{size}", "zipf", ids_file=top, exponent=0.0),
                            t.prefix, seconds, ctx.opts.connections)
            drain(t)
            spent += seconds
            memory = _memory(t.server)
            if (memory.get("entries") or 0) >= 0.9 * size:
                break
        log(f"l1sizes: {t.label} filled for {spent} s: {memory}")


def run(ctx: Context) -> None:
    opts = ctx.opts
    started: dict[str, AppServer | str] = {}
    plan = [(label(size), "l1l2", {"CACHE_L1_MAX_ENTRIES": str(size), "CACHE_L1_TTL": str(L1_TTL),
                                   "CACHE_L1_MAX_BYTES": str(L1_BYTES_PER_ENTRY * size)})
            for size in opts.l1_sizes]
    plan.append((L2_ONLY, "l2", {}))
    sizes = {label(size): size for size in opts.l1_sizes}
    for name, mode, extra in plan:
        try:
            started[name] = ctx.stack.start_app(mode, {**ctx.env, **extra}, opts.server, opts.workers, opts.threads)
            log(f"l1sizes: {name} on :{started[name].port}")
        except Unavailable as exc:
            started[name] = f"n/a: {exc}"
            log(started[name])
    try:
        modes = {name: mode for name, mode, _ in plan}
        entries = [Entry(name, modes[name], server) for name, server in started.items() if isinstance(server, AppServer)]
        _fill(ctx, entries, sizes)
        # run_rounds would empty the tiers (and prewarm) again: what was just filled stays.
        cold_start, zipf_prewarm = opts.cold_start, getattr(opts, "zipf_prewarm", False)
        opts.cold_start, opts.zipf_prewarm = False, False
        try:
            rows = run_rounds(ctx, "l1sizes", "zipf", entries, opts.rounds, log)
        finally:
            opts.cold_start, opts.zipf_prewarm = cold_start, zipf_prewarm
        rows += [Result("l1sizes", "zipf", name, status=server) for name, server in started.items()
                 if isinstance(server, str)]
        for res in rows:
            server = started.get(res.mode)
            if res.status == "ok" and isinstance(server, AppServer):
                res.extra["memory"] = _memory(server)
                res.extra["l1_max_entries"] = sizes.get(res.mode)
                res.extra["gc"] = probes.gc_pauses(server.metrics_dir)
            ctx.results.append(res)
            log(f"l1sizes {res.mode:18} " + (f"{res.req_s:8.0f} req/s app CPU {res.cpu_ms.get('app', float('nan')):.3f} "
                                              f"ms/req p50 {res.p50_ms:.2f} p99 {res.p99_ms:.1f} ms {res.hit} "
                                              f"{res.extra.get('memory', {})}" if res.status == "ok" else res.status))
    finally:
        for server in started.values():
            if isinstance(server, AppServer):
                ctx.stack.stop_app(server)
