"""Measurements of one workload: wrk against each mode (or server), with the server-side counters
and the CPU of the processes under test around every measured window.

`compare` runs the modes of one workload in one round: with `--slice S` they alternate in S-second
slices, the order rotated each cycle (A B C, B C A, C A B, ...), so that each mode's figure is an
aggregate of slices interleaved in time with the others' and each ratio can compare neighbours
(bench/stats.paired_ratio); with `--slice 0`, one block of --duration seconds per mode, each from
emptied shared tiers. `aggregate` turns the slices of every round into one Result per mode.
"""

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bench import loadgen, webget
from bench.context import Context, Result, log
from bench.loadgen import Workload
from bench.probes import Snapshot, busy_connections, prom_samples, requests_served
from bench.stack import ROOT, AppServer
from bench.stats import percentile

# After wrk stops, the requests still queued in the server finish; the window ends after them
# (drain): polled every DRAIN_POLL s until no connection to the target is unfinished and it
# answered nothing more over one poll, at most DRAIN_LIMIT s.
DRAIN_POLL, DRAIN_LIMIT = 0.1, 3.0
CACHED_MODES = ("cache_page", "l2", "l1l2", "l1l2-asgi", "varnish")
PREWARMED_MODES = ("l2", "l1l2", "l1l2-asgi", "varnish")  # --zipf-prewarm: what warm_cache --all fills


@dataclass(frozen=True)
class Entry:
    """One row of a comparison: its label (the mode, or the server kind) and what it measures."""

    label: str
    mode: str
    server_override: AppServer | None = None


@dataclass
class Target:
    """A resolved entry: where wrk sends the workload and whose counters and CPU are read."""

    label: str
    mode: str
    workload: Workload
    base_url: str
    prefix: str
    server: AppServer
    varnish_dir: Path | None
    cpu_roots: dict  # {"app": pid, "varnish": pid, "redis": pid}: the trees bench/cpu.py reads


def target(ctx: Context, mode: str):
    """(base_url, path prefix, server, varnish name dir) of a mode, or an n/a string."""
    if mode == "varnish":
        if not isinstance(ctx.varnish, tuple):
            return ctx.varnish or "n/a: Varnish not started"
        server = ctx.servers["l1l2"]
        return f"http://127.0.0.1:{ctx.varnish[0]}", "", server, ctx.varnish[1]
    server = ctx.servers.get(mode)
    if not isinstance(server, AppServer):
        return server or f"n/a: no {mode} server"
    return server.base_url, "/bench/cp" if mode == "cache_page" else "", server, None


def availability(base_url: str, prefix: str, workload: Workload, mode: str, require_cache: bool = True) -> str | None:
    path = prefix + workload.probe_path()
    # 30 s, not try_get's 5: on a shared machine at load 30 a 5 s probe dropped whole rounds (2026-12-07).
    reply = webget.try_get(base_url, path, timeout=30.0)
    if reply is None:
        return f"n/a: GET {path} failed"
    if reply.status != 200:
        return f"n/a: GET {workload.probe_path()} -> {reply.status}"
    if require_cache and mode in ("l2", "l1l2", "l1l2-asgi") and "x-cache" not in reply.headers:
        return "n/a: newsite cache not active (no X-Cache header)"
    return None


def hit_summary(mode: str, delta: dict, requests: int) -> tuple[str, dict]:
    parts, ratios = [], {}
    for tier, results in sorted(delta["cache"].items()):
        total = sum(results.values())
        hits = sum(v for k, v in results.items() if k.lower().startswith("hit"))
        if total:
            ratios[tier] = hits / total
            parts.append(f"{tier} {hits / total:.2f}")
    if mode == "cache_page" and requests:
        sets = delta["redis_by_command"].get("set", 0) + delta["redis_by_command"].get("setex", 0)
        ratios["cache_page"] = max(0.0, 1 - sets / 2 / requests)
        parts.append(f"cache_page ~{ratios['cache_page']:.2f}")
    if mode == "varnish":
        var = delta["varnish"]
        looked = var.get("cache_hit", 0) + var.get("cache_miss", 0) + var.get("cache_hitpass", 0)
        if looked:
            ratios["edge"] = var.get("cache_hit", 0) / looked
            parts.append(f"edge {ratios['edge']:.2f}")
    return " / ".join(parts), ratios


def cpu_roots(ctx: Context, server: AppServer, varnish_dir: Path | None) -> dict:
    """The process trees whose CPU a window of this target counts: the app server (gunicorn
    master + workers, or granian's), varnishd (manager + child) in front of it, the private
    redis-server (none with --redis shared: that Redis serves other clients too)."""
    roots = {"app": server.proc.popen.pid}
    if varnish_dir is not None:
        roots["varnish"] = ctx.stack.pid_of("varnish")
    if getattr(ctx.opts, "redis", "private") == "private":
        roots["redis"] = ctx.stack.pid_of("redis")
    return {name: pid for name, pid in roots.items() if pid}


def ban_all(varnish_dir) -> None:
    subprocess.run(["varnishadm", "-n", str(varnish_dir), "ban", "req.url ~ ."], capture_output=True, timeout=10)


def _memory(ctx: Context) -> tuple[int, int]:
    return int(ctx.redis_client.info("memory")["used_memory"]), int(ctx.redis_client.dbsize())


def run_warm_cache(ctx: Context, args: list[str]) -> dict:
    """Run manage.py warm_cache `args` on the servers' settings: its time (wall clock, and the
    run's own report), Redis used_memory and DBSIZE around it; or {"status": "n/a: ..."}."""
    memory_before, keys_before = _memory(ctx)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "manage.py", "warm_cache", *args, "--verbosity", "0"],
        cwd=ROOT, env=ctx.env, capture_output=True, text=True, timeout=600,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        return {"status": f"n/a: warm_cache failed: {done.stderr.strip()[-300:]}"}
    memory_after, keys_after = _memory(ctx)
    report = _last_report(ctx) or {}
    return {"seconds": report.get("seconds"), "wall_seconds": round(wall, 2),
            "articles": report.get("articles"), "edge": report.get("edge"), "memory_before": memory_before,
            "memory_after": memory_after, "keys_before": keys_before, "keys_after": keys_after}


def _last_report(ctx: Context) -> dict | None:
    raw = ctx.redis_client.get(f"{ctx.opts.key_prefix}:warm_cache:last")  # articles.keys.warm_cache_status_key
    try:
        return json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return None


def prewarm(ctx: Context, targets: list[Target]) -> dict | None:
    """--zipf-prewarm (issue 17.3): warm_cache --all right after the flush, before the warm-ups,
    when a Zipf target is a mode it fills (with the Varnish mode among them, --edge through that
    varnishd too: issue 17.6); None otherwise."""
    if not getattr(ctx.opts, "zipf_prewarm", False) or not any(
            t.workload.kind == "zipf" and t.mode in PREWARMED_MODES for t in targets):
        return None
    args = ["--all"]
    edge = next((t.base_url for t in targets if t.varnish_dir is not None), None)
    if edge:
        args += ["--edge", edge]
    result = run_warm_cache(ctx, args)
    if "status" not in result:
        through = result.get("edge") or {}
        log(f"zipf  prewarmed: warm_cache {' '.join(args)} {result['seconds']} s, Redis used_memory "
            f"{result['memory_before']:,} -> {result['memory_after']:,} B"
            + (f"; edge {through.get('requests')} pages in {through.get('seconds')} s" if through else ""))
    return result


def prepare(ctx: Context, workload_name: str, entry: Entry) -> Target | str:
    """The entry's Target, or the n/a reason it cannot be measured."""
    mode, server_override = entry.mode, entry.server_override
    workload = ctx.workloads.get(workload_name)
    if mode == "floor" or workload_name == "floor":
        workload = Workload("floor", "fixed", path="/bench/floor/")
    if isinstance(workload, str) or workload is None:
        return workload or f"n/a: no workload {workload_name}"
    tgt = target(ctx, mode) if server_override is None else (server_override.base_url, "", server_override, None)
    if isinstance(tgt, str):
        return tgt
    base_url, prefix, server, varnish_dir = tgt
    if mode == "floor":
        prefix = ""
    reason = availability(base_url, prefix, workload, mode, require_cache=server_override is None)
    if reason:
        return reason
    return Target(entry.label, mode, workload, base_url, prefix, server, varnish_dir,
                  cpu_roots(ctx, server, varnish_dir))


def empty_tiers(ctx: Context, targets: list[Target]) -> None:
    """Redis db and Varnish emptied (unless --no-cold-start) when any target is a cached mode."""
    if ctx.opts.cold_start and any(t.mode in CACHED_MODES for t in targets):
        ctx.redis_client.flushdb()
        for t in targets:
            if t.varnish_dir is not None:
                ban_all(t.varnish_dir)


def warm(ctx: Context, t: Target) -> None:
    """The target's warm-up, drained like a window (its leftovers would land in the next one)."""
    seconds = ctx.opts.zipf_warmup if t.workload.kind == "zipf" else ctx.opts.warmup
    if seconds > 0:
        loadgen.run_wrk(ctx.wrk, t.base_url, t.workload, t.prefix, seconds, ctx.opts.connections)
        drain(t)


def drain(t: Target) -> float:
    """Wait until the target has finished what wrk left queued; returns the seconds waited.

    The next slice loads another server on the same core: a request still queued or running here
    would cost that slice CPU and Redis commands that are not its own, and be missing from this
    window's count. Done = no unfinished connection to the server's (or Varnish's) port
    (probes.busy_connections: CLOSE_WAIT once wrk has gone) and no request answered over one poll.
    Idle servers use no CPU, so polling CPU would not tell a starved request from none."""
    ports = {t.server.port, urlparse(t.base_url).port}
    started = time.monotonic()
    served = requests_served(prom_samples(t.server.metrics_dir))
    while time.monotonic() - started < DRAIN_LIMIT:
        time.sleep(DRAIN_POLL)
        now = requests_served(prom_samples(t.server.metrics_dir))
        if now == served and not busy_connections(ports):
            break
        served = now
    return time.monotonic() - started


def window(ctx: Context, t: Target, seconds: float, round_: int, cycle: int) -> dict:
    """One measured window (a slice): wrk's summary, the counters' deltas and the CPU seconds of
    each process tree, all over the same interval (snapshot, wrk, drain, snapshot)."""
    before = Snapshot(t.server.metrics_dir, ctx.redis_client, t.varnish_dir, t.cpu_roots)
    run = loadgen.run_wrk(ctx.wrk, t.base_url, t.workload, t.prefix, seconds, ctx.opts.connections)
    drained = drain(t)
    after = Snapshot(t.server.metrics_dir, ctx.redis_client, t.varnish_dir, t.cpu_roots)
    d = after.delta(before)
    # Per-request figures divide by what the server side answered (wrk does not count the requests
    # still queued when it stops); the edge's requests for the Varnish mode.
    served = d["varnish"].get("client_req", 0) if t.varnish_dir is not None else d["served"]
    return {
        "round": round_, "cycle": cycle, "requests": run["requests"], "duration_s": run["duration_us"] / 1e6,
        "req_s": run["req_s"], "served": max(1, served or run["requests"]), "bytes": run["bytes"],
        "p50_ms": run["p50"] / 1000, "p95_ms": run["p95"] / 1000, "p99_ms": run["p99"] / 1000,
        "non_2xx": run["status"], "errors": run["errors"],
        "db_queries": d["db_queries"], "redis_commands": d["redis_commands"],
        "redis_by_command": d["redis_by_command"], "cache": d["cache"], "loads": d["loads"],
        "varnish": d["varnish"],
        "cpu_s": {name: td.seconds for name, td in d["cpu"].items()},
        "cpu_exited": sum(td.exited for td in d["cpu"].values()),
        "cpu_lost_s": sum(td.lost_s for td in d["cpu"].values()),
        "drain_s": drained,
    }


def slice_schedule(labels: list[str], cycles: int) -> list[tuple[int, str]]:
    """(cycle, label) in measuring order: every label once per cycle, the order rotated by one
    each cycle (A B C, B C A, C A B, A B C, ...), so no mode always follows the same neighbour."""
    n = len(labels)
    return [(c, labels[(c + i) % n]) for c in range(cycles) for i in range(n)] if n else []


def compare(ctx: Context, workload_name: str, entries: list[Entry], round_: int) -> dict:
    """{label: [slice, ...] or an n/a reason}: one round of `entries` on one workload.

    Sliced (--slice > 0): the shared tiers are emptied once, every entry gets its warm-up, then
    cycles of one --slice-second window per entry (--duration / --slice cycles, at least 1).
    Blocks (--slice 0): per entry, tiers emptied, warm-up, one --duration-second window.
    A window whose load generator fails is dropped and its error kept under "failed"."""
    opts = ctx.opts
    out, failed, targets = {}, {}, {}
    for e in entries:
        t = prepare(ctx, workload_name, e)
        out[e.label] = t if isinstance(t, str) else []
        if not isinstance(t, str):
            targets[e.label] = t

    def measured(label, seconds, cycle):
        try:
            out[label].append(window(ctx, targets[label], seconds, round_, cycle))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed.setdefault(label, []).append(f"load generator failed: {exc}")

    slice_s = getattr(opts, "slice", 0) or 0
    if slice_s > 0:
        empty_tiers(ctx, list(targets.values()))
        out["prewarm"] = prewarm(ctx, list(targets.values()))
        for label, t in list(targets.items()):
            try:
                warm(ctx, t)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                out[label] = f"n/a: load generator failed in the warm-up: {exc}"
                del targets[label]
        cycles = max(1, round(opts.duration / slice_s))
        for cycle, label in slice_schedule(list(targets), cycles):
            measured(label, slice_s, cycle)
    else:
        for label, t in targets.items():
            empty_tiers(ctx, [t])
            out.setdefault("prewarm", prewarm(ctx, [t]))
            try:
                warm(ctx, t)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failed.setdefault(label, []).append(f"load generator failed: {exc}")
                continue
            measured(label, opts.duration, 0)
    for label, errors in failed.items():
        if isinstance(out[label], list) and not out[label]:
            out[label] = f"n/a: {errors[0]}"
    out["failed"] = failed
    return out


def aggregate(scenario: str, workload_name: str, label: str, mode: str, slices: list[dict],
              failed: int = 0) -> Result:
    """One row from the slices of one entry (every round pooled).

    req/s: all requests over all slice durations; per-request figures (DB, Redis, CPU): the sums
    over the slices divided by the requests served in them; latency: the median over the slices of
    each slice's wrk percentile (wrk's histograms are not merged)."""
    res = Result(scenario, workload_name, label)
    if not slices:
        res.status = "n/a: no window measured"
        return res
    served = sum(s["served"] for s in slices)
    duration = sum(s["duration_s"] for s in slices)
    res.requests = sum(s["requests"] for s in slices)
    res.req_s = res.requests / duration if duration else 0.0
    res.p50_ms, res.p95_ms, res.p99_ms = (percentile([s[k] for s in slices], 50) for k in ("p50_ms", "p95_ms", "p99_ms"))
    res.non_2xx, res.errors = sum(s["non_2xx"] for s in slices), sum(s["errors"] for s in slices)
    res.db_per_req = sum(s["db_queries"] for s in slices) / served
    res.redis_per_req = sum(s["redis_commands"] for s in slices) / served
    by_cmd, cache, var = Counter(), {}, Counter()
    for s in slices:
        by_cmd.update(s["redis_by_command"])
        var.update(s["varnish"])
        for tier, results in s["cache"].items():
            cache.setdefault(tier, Counter()).update(results)
    res.redis_top = ", ".join(f"{k} {v / served:.2f}" for k, v in by_cmd.most_common(6))
    res.hit, ratios = hit_summary(mode, {"cache": cache, "redis_by_command": dict(by_cmd), "varnish": var}, served)
    names = set().union(*(s["cpu_s"] for s in slices))
    # A tree's CPU per request only when every slice read it (a column is never a partial sum).
    res.cpu_ms = {name: 1000 * sum(s["cpu_s"][name] for s in slices) / served
                  for name in sorted(names) if all(name in s["cpu_s"] for s in slices)}
    req_s = [s["req_s"] for s in slices]
    res.extra = {"ratios": ratios, "loads": sum(s["loads"] for s in slices), "varnish": dict(var),
                 "bytes_per_resp": sum(s["bytes"] for s in slices) / max(1, res.requests),
                 "slices": slices, "req_s_range": (min(req_s), max(req_s)), "failed_slices": failed,
                 "cpu_exited": sum(s["cpu_exited"] for s in slices),
                 "drains_at_limit": sum(1 for s in slices if s.get("drain_s", 0.0) >= DRAIN_LIMIT),
                 "cpu_lost_s": sum(s["cpu_lost_s"] for s in slices)}
    if res.non_2xx > 0.01 * served:
        res.status = f"invalid: {res.non_2xx} non-2xx of {served}"
    return res


def run_rounds(ctx: Context, scenario: str, workload_name: str, entries: list[Entry], rounds: int,
               log=None) -> list[Result]:
    """`rounds` rounds of compare(), then one Result per entry with every round's slices."""
    pooled = {e.label: [] for e in entries}
    reasons, failed, prewarms = {}, Counter(), []
    for rnd in range(rounds):
        out = compare(ctx, workload_name, entries, rnd)
        if (warmed := out.pop("prewarm", None)) is not None:
            prewarms.append(warmed)
        for label, n in ((label, len(errs)) for label, errs in out.pop("failed").items()):
            failed[label] += n
        for label, got in out.items():
            if isinstance(got, str):
                reasons.setdefault(label, got)
            else:
                pooled[label].extend(got)
        if log:
            log(f"round {rnd + 1}/{rounds} of {workload_name}: "
                + ", ".join(f"{label} {sum(s['requests'] for s in got) / max(1e-9, sum(s['duration_s'] for s in got)):.0f} req/s"
                            for label, got in out.items() if isinstance(got, list) and got))
    results = []
    for e in entries:
        if pooled[e.label]:
            results.append(aggregate(scenario, workload_name, e.label, e.mode, pooled[e.label], failed[e.label]))
        else:
            results.append(Result(scenario, workload_name, e.label, status=reasons.get(e.label, "n/a: not measured")))
    if prewarms:
        for r in results:
            if r.mode in PREWARMED_MODES:
                r.extra["prewarm"] = prewarms[-1]
    return results
