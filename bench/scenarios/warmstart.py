"""Scenario `warmstart`: the hit ratio of the first minute of Zipf traffic on a fresh L1+L2
server, started right after `manage.py warm_cache`, next to one started cold (issue 6), and
right after `manage.py warm_cache --all` (every article's detail in bulk, issue 17.3).

Popularity follows the articles' stored view counts (what warm_cache ranks by: the realistic
case, where yesterday's most read are today's), with the same Zipf exponent as the throughput
scenario. Each phase starts from an empty Redis db and a new server (empty L1s); the warm phase
runs warm_cache (bench settings, same Redis) before the load, the `all` phase warm_cache --all.
The minute is measured in `--warm-slices` slices so the report shows how fast each start
converges (bench/report.py): hit ratio and DB queries per request per slice. For each warm the
report has its time (and the --all part's), Redis used_memory and DBSIZE before and after it,
and for `all` the time of a second --all on the warm Redis (what a deploy costs when Redis
kept its contents). `--warm-phases` picks the phases.
"""

from __future__ import annotations

from bench import loadgen
from bench.context import log
from bench.loadgen import Workload
from bench.measure import cpu_roots, run_warm_cache
from bench.probes import Snapshot
from bench.stack import AppServer, Unavailable

PHASES = ("cold", "warm", "all")
WARM_ARGS = {"warm": [], "all": ["--all"]}
SHARED_SERVERS = None  # starts a server of its own per phase


def _ranked_by_views(ctx) -> Workload:
    import psycopg

    with psycopg.connect(ctx.opts.database_url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM articles_article WHERE status = 'published' ORDER BY view_count DESC, id")]
    path = ctx.stack.workdir / "zipf-by-views.txt"
    path.write_text("\n".join(str(i) for i in ids) + "\n")
    return Workload("zipf-views", "zipf", ids_file=path, exponent=loadgen.zipf_exponent(len(ids)))


def _hit_ratio(delta: dict) -> tuple[float | None, float | None, float | None]:
    """(app hit ratio: L1 or L2 answered, l1 ratio, l2 ratio of L1 misses)."""
    l1 = delta["cache"].get("l1", {})
    l2 = delta["cache"].get("l2", {})
    lookups = sum(l1.values())
    l1_hits = l1.get("hit", 0)
    l2_hits = l2.get("hit", 0) + l2.get("stale", 0)
    l2_total = sum(l2.values())
    if not lookups:
        return None, None, None
    return (l1_hits + l2_hits) / lookups, l1_hits / lookups, (l2_hits / l2_total if l2_total else None)


def run(ctx) -> None:
    opts = ctx.opts
    if ctx.data.get("reason"):
        ctx.warmstart = {"status": f"n/a: {ctx.data['reason']}"}
        return
    workload = _ranked_by_views(ctx)
    slices = max(1, int(opts.warm_slices))
    slice_seconds = opts.warm_minute / slices
    out = {"status": "ok", "slice_seconds": slice_seconds, "phases": {}}
    phases = [p.strip() for p in getattr(opts, "warm_phases", ",".join(PHASES)).split(",") if p.strip()]
    for phase in phases:
        if phase not in PHASES:
            out["phases"][phase] = {"status": f"n/a: unknown phase (one of {', '.join(PHASES)})"}
            continue
        ctx.redis_client.flushdb()
        try:
            server = ctx.stack.start_app("l1l2", ctx.env, opts.server, opts.workers, opts.threads)
        except Unavailable as exc:
            ctx.warmstart = {"status": f"n/a: {exc}"}
            return
        try:
            warm = None
            if phase in WARM_ARGS:
                warm = run_warm_cache(ctx, WARM_ARGS[phase])
                if "status" in warm:
                    out["phases"][phase] = warm
                    continue
                log(f"warmstart {phase}: warm_cache {' '.join(WARM_ARGS[phase])} took {warm['seconds']} s, "
                    f"Redis used_memory {warm['memory_before']:,} -> {warm['memory_after']:,} B, "
                    f"keys {warm['keys_before']:,} -> {warm['keys_after']:,}")
            rows = []
            roots = cpu_roots(ctx, server, None)
            for index in range(slices):
                before = Snapshot(server.metrics_dir, ctx.redis_client, cpu_roots=roots)
                run_ = loadgen.run_wrk(ctx.wrk, server.base_url, workload, "", slice_seconds, opts.connections)
                after = Snapshot(server.metrics_dir, ctx.redis_client, cpu_roots=roots)
                delta = after.delta(before)
                ratio, l1, l2 = _hit_ratio(delta)
                served = max(1, delta["served"] or run_["requests"])
                rows.append({"slice": index, "req_s": run_["req_s"], "hit": ratio, "l1": l1, "l2": l2,
                             "db_per_req": delta["db_queries"] / served, "requests": served,
                             "cpu_s": {name: td.seconds for name, td in delta["cpu"].items()}})
            total = sum(r["requests"] for r in rows)
            cpu_names = set().union(*(r["cpu_s"] for r in rows))
            out["phases"][phase] = {
                "status": "ok", "slices": rows, "warm_cache_seconds": warm["seconds"] if warm else None,
                "warm": warm,
                "hit": sum((r["hit"] or 0) * r["requests"] for r in rows) / max(1, total),
                "db_per_req": sum(r["db_per_req"] * r["requests"] for r in rows) / max(1, total),
                "req_s": sum(r["req_s"] for r in rows) / len(rows),
                "cpu_ms": {name: 1000 * sum(r["cpu_s"].get(name, 0.0) for r in rows) / max(1, total)
                           for name in sorted(cpu_names)},
            }
            if phase == "all":
                again = run_warm_cache(ctx, WARM_ARGS[phase])
                out["phases"][phase]["rewarm_seconds"] = again.get("seconds")
                log(f"warmstart all: a second warm_cache --all (Redis warm) took {again.get('seconds')} s")
            log(f"warmstart {phase}: hit ratio {out['phases'][phase]['hit']:.3f} over the first "
                f"{opts.warm_minute:g} s, db/req {out['phases'][phase]['db_per_req']:.3f} "
                f"(first slice {rows[0]['db_per_req']:.3f})")
        finally:
            if isinstance(server, AppServer):
                ctx.stack.stop_app(server)
    ctx.warmstart = out
