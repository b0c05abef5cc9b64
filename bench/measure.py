"""One measurement: wrk against one mode x workload, with the server-side counters around it."""

import json
import subprocess
import sys
import time

from bench import loadgen, webget
from bench.context import Context, Result, log
from bench.loadgen import Workload
from bench.probes import Snapshot
from bench.stack import ROOT, AppServer


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
    reply = webget.try_get(base_url, path)
    if reply is None:
        return f"n/a: GET {path} failed"
    if reply.status != 200:
        return f"n/a: GET {workload.probe_path()} -> {reply.status}"
    if require_cache and mode in ("l2", "l1l2") and "x-cache" not in reply.headers:
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
            "articles": report.get("articles"), "memory_before": memory_before, "memory_after": memory_after,
            "keys_before": keys_before, "keys_after": keys_after}


def _last_report(ctx: Context) -> dict | None:
    raw = ctx.redis_client.get(f"{ctx.opts.key_prefix}:warm_cache:last")  # caching.keys.warm_cache_status_key
    try:
        return json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return None


def measure(ctx: Context, scenario: str, workload_name: str, mode: str, server_override=None) -> Result:
    res = Result(scenario, workload_name, mode)
    workload = ctx.workloads.get(workload_name)
    if mode == "floor" or workload_name == "floor":
        workload = Workload("floor", "fixed", path="/bench/floor/")
    if isinstance(workload, str):
        res.status = workload
        return res
    tgt = target(ctx, mode) if server_override is None else (server_override.base_url, "", server_override, None)
    if isinstance(tgt, str):
        res.status = tgt
        return res
    base_url, prefix, server, varnish_dir = tgt
    if mode == "floor":
        prefix = ""
    reason = availability(base_url, prefix, workload, mode, require_cache=server_override is None)
    if reason:
        res.status = reason
        return res
    opts = ctx.opts
    if opts.cold_start and mode in ("cache_page", "l2", "l1l2", "varnish"):
        # Every cached mode starts from empty shared tiers and gets the same warm-up.
        ctx.redis_client.flushdb()
        if varnish_dir is not None:
            ban_all(varnish_dir)
    prewarm = None
    if getattr(opts, "zipf_prewarm", False) and workload.kind == "zipf" and mode in ("l2", "l1l2", "varnish"):
        # The long tail warmed, not waited for (issue 17.3): warm_cache --all after the flush,
        # then the same warm-up as every mode (cache_page has no bulk warm: it gets the warm-up).
        prewarm = run_warm_cache(ctx, ["--all"])
        if "status" in prewarm:
            res.status = prewarm["status"]
            return res
        log(f"zipf  {mode:10} prewarmed: warm_cache --all {prewarm['seconds']} s, Redis used_memory "
            f"{prewarm['memory_before']:,} -> {prewarm['memory_after']:,} B")
    warmup = opts.zipf_warmup if workload.kind == "zipf" else opts.warmup
    if warmup > 0:
        loadgen.run_wrk(ctx.wrk, base_url, workload, prefix, warmup, opts.connections)
    before = Snapshot(server.metrics_dir, ctx.redis_client, varnish_dir)
    run = loadgen.run_wrk(ctx.wrk, base_url, workload, prefix, opts.duration, opts.connections)
    time.sleep(0.3)  # let the server finish what was still queued when wrk stopped
    after = Snapshot(server.metrics_dir, ctx.redis_client, varnish_dir)
    delta = after.delta(before)
    # Per-request ratios divide by what the server side answered (wrk does not count the requests
    # still queued when it stops); the edge's requests for the Varnish mode.
    served = delta["varnish"].get("client_req", 0) if varnish_dir is not None else delta["served"]
    n = max(1, served or run["requests"])
    res.req_s, res.requests = run["req_s"], run["requests"]
    res.p50_ms, res.p95_ms, res.p99_ms = run["p50"] / 1000, run["p95"] / 1000, run["p99"] / 1000
    res.non_2xx, res.errors = run["status"], run["errors"]
    res.db_per_req = delta["db_queries"] / n
    res.redis_per_req = delta["redis_commands"] / n
    res.redis_top = ", ".join(f"{k} {v / n:.2f}" for k, v in list(delta["redis_by_command"].items())[:6])
    res.hit, ratios = hit_summary(mode, delta, n)
    res.extra = {"ratios": ratios, "loads": delta["loads"], "varnish": delta["varnish"],
                 "bytes_per_resp": run["bytes"] / max(1, run["requests"]), "prewarm": prewarm}
    if res.non_2xx > 0.01 * n:
        res.status = f"invalid: {res.non_2xx} non-2xx of {n}"
    return res
