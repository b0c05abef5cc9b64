"""bench/results/<date>-<scenario>.md and its PNG chart (matplotlib, Agg backend)."""

import math
import os
import platform
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench.stack import ROOT, TASKSET
from bench.stats import paired_ratio, percentile

CPU_TREES = (("app", "app"), ("varnish", "Varnish"), ("redis", "Redis"))
CPU_NOTE = ("CPU ms/req: user + sys CPU of each process tree under test over exactly the measured "
            "windows (from `/proc/<pid>/stat`: utime + stime of every live process of the tree, plus "
            "cutime + cstime, the time of the children it reaped, so a recycled worker's time stays "
            "counted), divided by the requests the server side answered in them: **app** = the app "
            "server's master and workers, **Varnish** = varnishd's manager and child (Varnish mode only), "
            "**Redis** = the private redis-server. The harness and wrk run on the other core and are not "
            "counted. **CPU x floor** = the floor's total server CPU per request / this mode's (a capacity "
            "ratio: above 1 is cheaper than the floor, like req/s above 1 is faster).")

MODE_LABELS = {
    "cluster": "cluster: L2-only + L1+L2 servers at once",
    "floor": "floor (constant view)",
    "bare": "bare WSGI constant (the hot L1 hit's bytes)",
    "nocache": "no cache",
    "cache_page": "cache_page (django-redis)",
    "l2": "newsite L2 only",
    "l1l2": "newsite L1+L2",
    "l1l2-asgi": "newsite L1+L2, ASGI (newsite.asgi)",
    "varnish": "Varnish -> L1+L2",
}


def _fmt(value, digits=1, dash="–"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dash
    return f"{value:,.{digits}f}"


def _ratio(value, floor):
    if value is None or not floor:
        return "–"
    return f"{value / floor:.2f}x"


def _git_rev() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "?"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _by(results, scenario):
    return [r for r in results if r.scenario == scenario]


def _find(results, scenario, workload, mode):
    for r in results:
        if r.scenario == scenario and r.workload == workload and r.mode == mode:
            return r
    return None


def _ok(r):
    return r is not None and r.status == "ok"


def ratio_of(r, base, metric="req_s"):
    """(median, min, max, cycles) of r over base: the per-cycle ratios of neighbouring slices when
    both rows have slices (bench/stats.paired_ratio), else the whole-figure ratio; None when n/a.
    metric "cpu": base CPU per request / r's (capacity)."""
    if not (_ok(r) and _ok(base)):
        return None
    paired = paired_ratio(r.extra.get("slices") or [], base.extra.get("slices") or [], metric)
    if paired:
        return paired
    if metric == "req_s":
        value = r.req_s / base.req_s if base.req_s else None
    else:
        mine, theirs = sum(r.cpu_ms.values()), sum(base.cpu_ms.values())
        value = theirs / mine if mine and theirs else None
    return None if value is None else (value, value, value, 0)


def _fmt_ratio(ratio, spread=True):
    if ratio is None:
        return "–"
    median, lo, hi, cycles = ratio
    if spread and cycles > 1 and f"{lo:.2f}" != f"{hi:.2f}":
        return f"{median:.2f}x ({lo:.2f}–{hi:.2f})"
    return f"{median:.2f}x"


def _worst_p99(r) -> float | None:
    """The highest p99 of the row's slices (the p99 column is their median: a rare pause, e.g. a
    full garbage collection, shows here)."""
    slices = r.extra.get("slices") or []
    values = [s["p99_ms"] for s in slices if isinstance(s, dict) and "p99_ms" in s]
    return max(values) if values else None


def throughput_tables(results, workloads, modes) -> list[str]:
    out = []
    for wl in workloads:
        floor = _find(results, "throughput", wl, "floor")
        f_p99 = floor.p99_ms if _ok(floor) else None
        out += [f"### Workload `{wl}`", "",
                "| mode | req/s | x floor | req/s per slice (min–max, n) | app CPU ms/req | Varnish CPU ms/req | "
                "Redis CPU ms/req | CPU x floor | p50 ms | p95 ms | p99 ms | p99 x floor | DB q/req | Redis cmd/req | "
                "hit ratio per tier | notes |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for mode in modes:
            r = _find(results, "throughput", wl, mode)
            label = MODE_LABELS.get(mode, mode)
            if r is None:
                continue
            if r.status != "ok" and not r.status.startswith("invalid"):
                out.append(f"| {label} | {r.status} |" + "  |" * 15)
                continue
            notes = []
            worst = _worst_p99(r)
            if worst is not None:
                notes.append(f"worst slice p99 {worst:.1f} ms")
            if r.extra.get("bytes_per_resp"):
                notes.append(f"{r.extra['bytes_per_resp']:,.0f} B/resp")
            if r.redis_top:
                notes.append(f"redis: {r.redis_top}")
            if r.errors:
                notes.append(f"{r.errors} socket errors")
            if r.extra.get("failed_slices"):
                notes.append(f"{r.extra['failed_slices']} slices lost (load generator failed)")
            if r.extra.get("cpu_exited"):
                notes.append(f"{r.extra['cpu_exited']} server processes exited mid-window"
                             + (f", >= {r.extra['cpu_lost_s'] * 1000:.0f} ms CPU unaccounted"
                                if r.extra.get("cpu_lost_s") else " (their CPU counted)"))
            if r.extra.get("drains_at_limit"):
                notes.append(f"{r.extra['drains_at_limit']} slices still busy 3 s after wrk stopped")
            if r.status != "ok":
                notes.append(r.status)
            slices = r.extra.get("slices") or []
            lo, hi = r.extra.get("req_s_range", (None, None))
            spread = f"{_fmt(lo, 0)}–{_fmt(hi, 0)} ({len(slices)})" if len(slices) > 1 else "–"
            cpu = [_fmt(r.cpu_ms.get(name), 3) for name, _ in CPU_TREES]
            out.append(
                f"| {label} | {_fmt(r.req_s, 0)} | {_fmt_ratio(ratio_of(r, floor))} | {spread} | {' | '.join(cpu)} | "
                f"{_fmt_ratio(ratio_of(r, floor, 'cpu'))} | {_fmt(r.p50_ms, 2)} | "
                f"{_fmt(r.p95_ms, 2)} | {_fmt(r.p99_ms, 2)} | {_ratio(r.p99_ms, f_p99)} | "
                f"{_fmt(r.db_per_req, 3)} | {_fmt(r.redis_per_req, 2)} | {r.hit or '–'} | {'; '.join(notes)} |")
        out.append("")
    return out


def prewarm_note(rows) -> list[str]:
    """--zipf-prewarm: what the last round's warm_cache --all (--edge) took and cost."""
    warmed = next((r.extra["prewarm"] for r in rows if r.extra.get("prewarm")), None)
    if not warmed or "status" in warmed:
        return [f"Prewarm: {warmed['status']}", ""] if warmed else []
    articles = warmed.get("articles") or {}
    line = (f"Prewarmed (--zipf-prewarm, after each round's flush, before the warm-ups): `warm_cache --all` "
            f"{warmed.get('seconds')} s for {articles.get('articles', 0):,} articles ({articles.get('seconds')} s "
            f"of it the bulk fill), Redis used_memory {_mb(warmed.get('memory_before'))} -> "
            f"{_mb(warmed.get('memory_after'))}")
    edge = warmed.get("edge")
    if edge:
        line += (f"; then `--edge`: {edge['requests']:,} pages through Varnish in {edge['seconds']} s "
                 f"(edge {', '.join(f'{k} {v:,}' for k, v in sorted(edge['by_edge'].items()))}; no answer {edge['errors']})")
    return [line + ".", ""]


def targets(results, ctx) -> list[str]:
    """SPEC section 8 targets, each with the measured figure and met / not met / n/a."""
    def both(name, workload, mode, base_mode, threshold):
        """A ratio target judged on req/s and on CPU per request (issue 17): met when both are."""
        r, base = _find(results, "throughput", workload, mode), _find(results, "throughput", workload, base_mode)
        by_rps, by_cpu = ratio_of(r, base), ratio_of(r, base, "cpu")
        if by_rps is None:
            rows.append((name, "n/a", None))
            return
        fig = f"req/s {_fmt_ratio(by_rps)}; CPU {_fmt_ratio(by_cpu)}"
        met = by_rps[0] >= threshold and (by_cpu is None or by_cpu[0] >= threshold)
        rows.append((name, fig, met))

    rows = []
    both("L1 hit (hot article, L1+L2) >= 0.95x floor", "hot", "l1l2", "floor", 0.95)
    both("L2 hit (hot article, L2 only) >= 0.85x floor", "hot", "l2", "floor", 0.85)
    both("issue 17.4: L1 hit (WSGI front) >= 1.5x floor", "hot", "l1l2", "floor", 1.5)
    both("issue 17.4: L1 hit (WSGI front) >= 0.95x a bare WSGI constant", "hot", "l1l2", "bare", 0.95)
    for workload in ("hot", "zipf", "feed"):  # issue 31: WEB_INTERFACE=asgi only if it is at least as good
        both(f"issue 31: {workload}, ASGI (l1l2-asgi) >= 1.0x WSGI (l1l2)", workload, "l1l2-asgi", "l1l2", 1.0)
    l2r = _find(results, "throughput", "hot", "l2")
    if _ok(l2r):
        # Per hit: what the requests sent, not the processes' background commands (the
        # subscriber's PING health checks, its once-a-second epoch MGET), shown apart.
        slices = l2r.extra.get("slices") or []
        served = sum(s["served"] for s in slices) or 1
        background = sum(s["redis_by_command"].get(c, 0) for s in slices for c in ("ping", "mget")) / served
        cmds = l2r.redis_per_req - background
        rows.append(("L2 hit <= 1 Redis command per hit", f"{cmds:.3f} (+ {background:.4f} background PING / MGET)",
                     cmds <= 1.0))
    else:
        rows.append(("L2 hit <= 1 Redis command per hit", "n/a", None))
    both("Zipf: L1+L2 >= 2x cache_page", "zipf", "l1l2", "cache_page", 2)
    both("issue 17.2: Zipf: L2 only >= 1.3x cache_page", "zipf", "l2", "cache_page", 1.3)
    both("issue 17.6: Zipf through Varnish >= 3x floor", "zipf", "varnish", "floor", 3)
    z = _find(results, "throughput", "zipf", "l1l2")
    zq = z.db_per_req if _ok(z) else None
    rows.append(("Zipf: <= 0.05 DB queries per request (L1+L2)", _fmt(zq, 3) if zq is not None else "n/a", None if zq is None else zq <= 0.05))
    for row in ctx.coldkey:
        if row.get("mode") in ("l2", "l1l2", "cluster"):
            loads = row.get("loads_metric") if row.get("loads_metric") else row.get("loads_from_db")
            ok = row.get("status") == "ok" and loads is not None
            rows.append((f"cold key, {row.get('clients', 256)} clients ({row['mode']}): 1 source load",
                         _fmt(loads, 1) if ok else row.get("status", "n/a"), (round(loads) <= 1) if ok else None))
    if ctx.fresh.get("status") == "ok":
        all_t = ctx.fresh["samples"]["all tiers"]
        p50, p99 = percentile(all_t, 50), percentile(all_t, 99)
        rows.append(("commit -> old version gone from every tier: p50 <= 25 ms", f"{p50:.1f} ms", p50 <= 25))
        rows.append(("commit -> old version gone from every tier: p99 <= 100 ms", f"{p99:.1f} ms", p99 <= 100))
    else:
        rows.append(("commit -> fresh p50 <= 25 ms, p99 <= 100 ms", ctx.fresh.get("status", "n/a: not run"), None))
    out = ["| target | measured | met |", "|---|---|---|"]
    for name, fig, met in rows:
        out.append(f"| {name} | {fig} | {'n/a' if met is None else ('yes' if met else '**no**')} |")
    return out


def coldkey_section(ctx) -> list[str]:
    if not ctx.coldkey:
        return []
    out = ["## Cold hot key", "",
           "A new article (never requested, so cold in every tier) is requested by "
           f"{ctx.opts.cold_clients} concurrent wrk connections for 2 s (split evenly over the servers of a row), on servers of "
           f"its own ({ctx.opts.cold_server}, {ctx.opts.workers} workers x {ctx.opts.cold_threads} threads, so requests run "
           "concurrently inside each process). Source loads: "
           "`newsite_cache_loads_total` delta over all workers, and DB queries / queries of one render.", "",
           "| mode | processes | requests | source loads (metric) | DB queries | loads from DB count | p99 ms | status |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in ctx.coldkey:
        if row.get("status") != "ok":
            out.append(f"| {MODE_LABELS.get(row['mode'], row['mode'])} |  |  |  |  |  |  | {row.get('status')} |")
            continue
        out.append(f"| {MODE_LABELS.get(row['mode'], row['mode'])} | {row['processes']} | {row['requests']} | {_fmt(row.get('loads_metric'), 0)} | "
                   f"{_fmt(row['db_queries'], 0)} | {_fmt(row.get('loads_from_db'), 1)} | {_fmt(row['p99_ms'], 1)} | ok |")
    return out + [""]


def fresh_section(ctx) -> list[str]:
    out = ["## Commit to fresh", ""]
    if ctx.fresh.get("status") != "ok":
        return out + [f"{ctx.fresh.get('status', 'n/a: not run')}", ""]
    out += [f"The harness saves the article (ORM `save()` in `transaction.atomic()`) {ctx.fresh['iterations']} times after warming every "
            "tier with the old version; probe threads poll each tier (new connection per request) until the new title "
            "shows: the L1+L2 server until every worker (X-Bench-Worker) has served it, the L2-only server, and Varnish. "
            "Timed from the COMMIT (an on_commit hook registered before the save's own); 5000 ms means still stale after 5 s.", "",
            "| tier | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|"]
    for name, values in ctx.fresh["samples"].items():
        out.append(f"| {name} | {percentile(values, 50):.1f} | {percentile(values, 99):.1f} | {max(values):.1f} |")
    save_ms = ctx.fresh.get("save_ms") or []
    if save_ms:
        out.append(f"| (the writer's `save()` itself, commit and on-commit hooks included) | {percentile(save_ms, 50):.1f} | "
                   f"{percentile(save_ms, 99):.1f} | {max(save_ms):.1f} |")
    for name, reason in (ctx.fresh.get("tiers") or {}).items():
        out.append(f"| {name} | {reason} |  |  |")
    if ctx.fresh.get("celery"):
        out.append(f"\nCelery worker (CDN purge delivery): {ctx.fresh['celery']}")
    return out + [""]


def servers_section(results) -> list[str]:
    rows = _by(results, "servers")
    if not rows:
        return []
    kinds = list(dict.fromkeys(r.mode for r in rows))
    workloads = list(dict.fromkeys(r.workload for r in rows))
    out = ["## App servers (same worker count, L1+L2 settings)", "",
           "The servers alternate in slices like the throughput modes; CPU ms/req as in the throughput table "
           "(the server's process tree; Redis: the private redis-server). x first = the median of the per-cycle "
           f"ratios to {kinds[0]} (req/s; CPU: its CPU per request over this one's).", "",
           "| workload | server | req/s | x first (req/s) | p99 ms | app CPU ms/req | Redis CPU ms/req | "
           "x first (CPU) | DB q/req | status |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for wl in workloads:
        first = _find(results, "servers", wl, kinds[0])
        for kind in kinds:
            r = _find(results, "servers", wl, kind)
            if not _ok(r):
                out.append(f"| {wl} | {kind} | – | – | – | – | – | – | – | {r.status if r else 'n/a'} |")
                continue
            out.append(f"| {wl} | {kind} | {_fmt(r.req_s, 0)} | {_fmt_ratio(ratio_of(r, first))} | "
                       f"{_fmt(r.p99_ms, 2)} | {_fmt(r.cpu_ms.get('app'), 3)} | {_fmt(r.cpu_ms.get('redis'), 3)} | "
                       f"{_fmt_ratio(ratio_of(r, first, 'cpu'))} | {_fmt(r.db_per_req, 3)} | ok |")
    return out + [""]


def l1sizes_section(results) -> list[str]:
    rows = _by(results, "l1sizes")
    if not rows:
        return []
    names = list(dict.fromkeys(r.mode for r in rows))
    sized = [n for n in names if n.startswith("L1+L2")]
    first = _find(results, "l1sizes", "zipf", sized[0]) if sized else None
    out = ["## L1 size curve (issue 29)", "",
           "One server per L1 size (CACHE_L1_MAX_ENTRIES) and an L2-only server, alternating in slices on the Zipf "
           "workload; x smallest = the median of the per-cycle ratios to the smallest L1 (req/s; CPU: its CPU per "
           "request over this one's). p99 / smallest: this size's p99 over the smallest's. RSS: each worker's VmRSS "
           "after the run; L1 entries and bytes: one worker's /health/cache/.", "",
           "| server | req/s | x smallest (req/s) | app CPU ms/req | x smallest (CPU) | p50 ms | p95 ms | p99 ms | "
           "worst slice p99 ms | p99 / smallest | hit ratio per tier | worker RSS MiB | L1 entries | L1 MiB (estimate) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for name in names:
        r = _find(results, "l1sizes", "zipf", name)
        if not _ok(r):
            out.append(f"| {name} | – | – | – | – | – | – | – | – | – | {r.status if r else 'n/a'} | – | – | – |")
            continue
        memory = r.extra.get("memory", {})
        rss = " / ".join(f"{kib / 1024:.0f}" for kib in memory.get("rss_kib", [])) or "–"
        l1_bytes = memory.get("l1_bytes")
        p99_ratio = f"{r.p99_ms / first.p99_ms:.2f}x" if _ok(first) and first.p99_ms else "–"
        out.append(f"| {name} | {_fmt(r.req_s, 0)} | {_fmt_ratio(ratio_of(r, first))} | {_fmt(r.cpu_ms.get('app'), 3)} | "
                   f"{_fmt_ratio(ratio_of(r, first, 'cpu'))} | {_fmt(r.p50_ms, 2)} | {_fmt(r.p95_ms, 2)} | "
                   f"{_fmt(r.p99_ms, 2)} | {_fmt(_worst_p99(r), 1)} | {p99_ratio} | {r.hit or '–'} | {rss} | "
                   f"{_int(memory.get('entries'))} | "
                   f"{_fmt(l1_bytes / 2**20 if l1_bytes else None, 1)} |")
    out.append("")
    return out + gc_section({r.mode: r.extra.get("gc", {}) for r in rows if _ok(r)})


def gc_section(by_server: dict) -> list[str]:
    """bench_gc_pause_seconds per server (every worker, the whole run: warm-ups included)."""
    if not any(by_server.values()):
        return []
    out = ["### Garbage collections (every worker of each server, the whole run)", "",
           "From a gc.callbacks probe in each worker (bench/counters.py): a full collection (generation 2) holds "
           "the GIL, so every thread of that worker waits it out.", "",
           "| server | gen 0 count | gen 1 count | gen 2 count | gen 2 total ms | gen 2 > 10 ms | gen 2 > 50 ms | "
           "longest gen 2 <= ms | all pauses ms |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, gens in by_server.items():
        full = gens.get("2", {})
        total = sum(g.get("seconds", 0.0) for g in gens.values())
        longest = full.get("max_le")
        out.append(f"| {name} | {gens.get('0', {}).get('count', 0):,} | {gens.get('1', {}).get('count', 0):,} | "
                   f"{full.get('count', 0):,} | {full.get('seconds', 0.0) * 1000:,.1f} | {full.get('over_10ms', 0):,} | "
                   f"{full.get('over_50ms', 0):,} | "
                   f"{'–' if longest is None else ('> 500' if longest == float('inf') else f'{longest * 1000:g}')} | "
                   f"{total * 1000:,.1f} |")
    return out + [""]


def l1sizes_chart(results, path: Path, title: str) -> bool:
    """p50 / p99 and app CPU per request against the L1 size (the L2-only server as a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in _by(results, "l1sizes") if _ok(r)]
    sized = [(int(r.extra.get("l1_max_entries", 0)), r) for r in rows if r.extra.get("l1_max_entries")]
    if not sized:
        return False
    sized.sort(key=lambda pair: pair[0])
    l2 = next((r for r in rows if not r.extra.get("l1_max_entries")), None)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    xs = [n for n, _ in sized]
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        axes[0].plot(xs, [getattr(r, key) for _, r in sized], style, label=f"L1+L2 {key[:3]}")
        if l2 is not None:
            axes[0].axhline(getattr(l2, key), linestyle="--", linewidth=0.8, color=axes[0].lines[-1].get_color(),
                            label=f"L2 only {key[:3]}")
    axes[1].plot(xs, [r.cpu_ms.get("app", 0) for _, r in sized], "o-", label="L1+L2")
    if l2 is not None:
        axes[1].axhline(l2.cpu_ms.get("app", 0), linestyle="--", color="grey", label="L2 only")
    for ax, ylabel in ((axes[0], "latency ms (lower is better)"), (axes[1], "app CPU ms per request")):
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{n // 1000}k" if n % 1000 == 0 else str(n) for n in xs])
        ax.set_xlabel("L1 max entries per worker")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _warm_cell(p: dict) -> str:
    warm = p.get("warm")
    if not warm:
        return "–"
    took = f"{warm['seconds']:.1f} s" if warm.get("seconds") is not None else "–"
    articles = warm.get("articles") or {}
    if articles.get("seconds") is not None:
        took += f" (articles {articles['articles']:,} in {articles['seconds']:.1f} s)"
    if p.get("rewarm_seconds") is not None:
        took += f"; again on the warm Redis {p['rewarm_seconds']:.1f} s"
    return took


def _memory_cell(p: dict) -> str:
    warm = p.get("warm")
    if not warm:
        return "–"
    grown = warm["memory_after"] - warm["memory_before"]
    return (f"{_mb(warm['memory_after'])} (+{_mb(grown)}), keys {warm['keys_before']:,} -> {warm['keys_after']:,}")


def warmstart_section(ctx) -> list[str]:
    data = ctx.warmstart
    if not data:
        return []
    out = ["## Warm start (first minute after a deploy)", ""]
    if data.get("status") != "ok":
        return out + [data.get("status", "n/a"), ""]
    out += ["A new L1+L2 server and an empty Redis; Zipf reads ranked by the stored view counts (what "
            "`warm_cache` ranks by). `warm`: `manage.py warm_cache` ran first; `all`: `manage.py warm_cache "
            "--all` (every published article's detail in bulk). Hit ratio = requests answered by L1 or L2 / "
            "all requests.", ""]
    phases = data["phases"]
    out += ["| start | hit ratio (whole run) | DB queries/req | DB queries/req, first slice | req/s | "
            "warm_cache took | Redis used_memory after the warm (grown) | app CPU ms/req | Redis CPU ms/req |",
            "|---|---:|---:|---:|---:|---|---|---:|---:|"]
    for phase, p in phases.items():
        if p.get("status") != "ok":
            out.append(f"| {phase} | {p.get('status', 'n/a')} | | | | | |")
            continue
        first = f"{p['slices'][0]['db_per_req']:.3f}" if p.get("slices") else "–"
        cpu = p.get("cpu_ms") or {}
        out.append(f"| {phase} | {p['hit']:.3f} | {p['db_per_req']:.3f} | {first} | {p['req_s']:,.0f} | "
                   f"{_warm_cell(p)} | {_memory_cell(p)} | {_fmt(cpu.get('app'), 3)} | {_fmt(cpu.get('redis'), 3)} |")
    ok_slices = next((p["slices"] for p in phases.values() if p.get("status") == "ok"), [])
    heads = " | ".join(f"{(i + 1) * data['slice_seconds']:g} s" for i in range(len(ok_slices)))
    for title, field, fmt in (("hit ratio", "hit", "{:.3f}"), ("DB queries/req", "db_per_req", "{:.3f}")):
        out += ["", f"Per {data['slice_seconds']:g} s slice ({title}):", "", f"| start | {heads} |",
                "|---|" + "---:|" * len(ok_slices)]
        for phase, p in phases.items():
            if p.get("status") == "ok":
                out.append(f"| {phase} | " + " | ".join(
                    fmt.format(r[field]) if r[field] is not None else "–" for r in p["slices"]) + " |")
    return out + [""]


def coherence_section(ctx) -> list[str]:
    """The stale-read sampler (scenario `coherence`): per tier, per L1+L2 worker, the writes and
    the issue-14 targets."""
    data = ctx.coherence
    if not data:
        return []
    out = ["## Coherence: stale reads while a writer edits (issue 14)", ""]
    if data.get("status") != "ok":
        return out + [data.get("status", "n/a"), ""]

    def ms(seconds):
        return "–" if seconds is None else f"{seconds * 1000:.1f}"

    readers = data["readers"]
    out += [f"Stack of its own (the header's server/load line is the other scenarios'): one {data['server']} with "
            f"{data['workers']} worker processes, L1+L2 (each worker its own L1; the worker is the `X-Bench-Worker` "
            "pid of each answer); one 1-worker L2-only gunicorn (`CACHE_L1_ENABLED=false`); varnishd with "
            "`deploy/varnish/default.vcl` in front of the L1+L2 server; a 1-worker editor gunicorn (L1+L2) that takes "
            "every write; a Celery worker draining the purge outbox into that Varnish; a private redis-server.",
            "",
            f"For {data['duration']:g} s, {sum(readers.values())} reader processes (L1+L2: {readers['l1l2']}, L2 only: "
            f"{readers['l2']}, edge: {readers['edge']}; http.client, one request at a time each) GET the details of "
            f"{len(data['articles'])} articles round-robin, while one writer edits their titles one after the other, "
            f"{data['edit_interval']:g} s after the previous edit returned, alternating the editorial API (PATCH, DRF "
            "token of a staff user) and the Django admin (session login, POST of the change form). A read is **stale** "
            "when it began after a write of its article had returned and shows an older `version`; its lag is how long "
            "after that write returned it began. Per edit, the **stale window** is the lag of the last stale read it "
            "caused (0 when none). No grace window is applied to any tier.", ""]
    if data.get("purge_check"):
        out += [f"Before the run, {data['purge_check']}.", ""]
    replica = data.get("replica")
    if replica:
        reasons = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(replica["fallbacks"].items())) or "none"
        out += [f"Reads on {replica['urls']} replica(s) (`DATABASE_REPLICA_URLS`; writes and the editor "
                f"on the primary): the readers' servers made {replica['loads']:,.0f} loads; primary "
                f"fallbacks (`newsite_cache_replica_fallbacks_total`) {reasons}: the fence's re-reads cost "
                f"{_fmt(replica['fence_per_s'], 2)} extra primary loads per second.", ""]
    if data.get("loadavg"):
        out += ["Load average of the machine (2 cores, shared) at the end of the sampling: "
                + " / ".join(f"{x:.1f}" for x in data["loadavg"]) + " (1 / 5 / 15 min).", ""]
    out += ["| tier | processes | reads | reads/s | errors | X-Cache (edge: X-Cache-Edge) | stale reads | lag p50 ms | "
            "lag p99 ms | edits made stale | stale window p50 ms | p99 ms | edits stale > 1 s |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]

    def row(label, t):
        mix = ", ".join(f"{k} {v / t['reads']:.1%}" for k, v in sorted(t["x_cache"].items(), key=lambda kv: -kv[1])
                        ) if t["reads"] else "–"
        procs = "–" if t.get("processes") is None else str(t["processes"])
        return (f"| {label} | {procs} | {t['reads']:,} | {_fmt(t['reads_per_s'], 0)} | {t['errors']:,} | {mix} | "
                f"{t['stale']:,} | {ms(t['lag_p50'])} | {ms(t['lag_p99'])} | {t['stale_edits']:,} | "
                f"{ms(t['window_p50'])} | {ms(t['window_p99'])} | {t['stale_after_1s']:,} |")

    tiers = data["tiers"]
    for tier, label in (("l1l2", "L1+L2 (every worker)"), ("l2", "L2 only"), ("edge", "edge (Varnish)")):
        out.append(row(label, tiers[tier]))
        if tier == "l1l2":
            for pid, t in tiers[tier].get("workers", {}).items():
                out.append(row(f"&nbsp;&nbsp;L1+L2 worker pid {pid}", t))
    writes = data["writes"]
    total_writes = sum(w["count"] for w in writes.values())
    by_kind = ", ".join(f"{k}: {w['count']:,}" for k, w in writes.items())
    out += ["", f"Writes: {total_writes:,} edits ({by_kind}). "
            "Write latency (request sent -> response returned; the write waits for every L1's acknowledgement, "
            "<= 50 ms by design):", "",
            "| writer | edits | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for kind, w in writes.items():
        out.append(f"| {kind} | {w['count']:,} | {_fmt(w['p50'], 1)} | {_fmt(w['p99'], 1)} | {_fmt(w['max'], 1)} |")
    outbox = data.get("outbox") or {}
    delivery = data.get("delivery")
    out += ["", "Purge outbox rows written during the run: " + (", ".join(f"{k} {v:,}" for k, v in sorted(outbox.items()))
                                                           or "none")
            + (f"; created -> delivered p50 {delivery['p50']:.1f} ms, p99 {delivery['p99']:.1f} ms, max "
               f"{delivery['max']:.1f} ms" if delivery else "") + ".", ""]
    app_reads = tiers["l1l2"]["reads"] + tiers["l2"]["reads"]
    app_stale = tiers["l1l2"]["stale"] + tiers["l2"]["stale"]
    processes = len(tiers["l1l2"].get("workers", {})) + (tiers["l2"].get("processes") or 0)
    edge = tiers["edge"]
    rows = [
        ("app tiers: 0 stale reads in >= 1,000,000 sampled reads across >= 3 processes",
         f"{app_stale:,} stale in {app_reads:,} reads across {processes} processes",
         app_stale == 0 and app_reads >= 1_000_000 and processes >= 3),
        ("edge: 0 edits left stale after 1 s", f"{edge['stale_after_1s']:,} of {total_writes:,}",
         edge["stale_after_1s"] == 0),
        ("edge: stale window p99 <= 100 ms", f"{ms(edge['window_p99'])} ms",
         edge["window_p99"] is not None and edge["window_p99"] <= 0.1),
    ]
    out += ["Targets (issue 14):", "", "| target | measured | met |", "|---|---|---|"]
    for name, fig, met in rows:
        out.append(f"| {name} | {fig} | {'yes' if met else '**no**'} |")
    listed = [s for tier in ("l1l2", "l2", "edge") for s in tiers[tier]["stale_reads"]]
    if listed:
        out += ["", "Stale reads, worst lag first (at most 20 per tier):", "",
                "| tier | article | saw version | expected >= | lag ms | X-Cache | X-Cache-Edge | Age | worker pid |",
                "|---|---:|---:|---:|---:|---|---|---:|---:|"]
        for s in listed:
            out.append(f"| {s['tier']} | {s['article']} | {s['version']} | {s['expected']} | {s['lag_ms']:.1f} | "
                       f"{s['x_cache'] or '–'} | {s['edge'] or '–'} | {s['age'] or '–'} | {s['worker'] or '–'} |")
    return out + [""]


def faults_section(ctx) -> list[str]:
    """The fault table (bench/scenarios/faults.py): what each fault did to the load, and what
    was left after recovery; the Redis row against L2 disabled; the older-snapshot row."""
    data = ctx.data.get("faults")
    if not data:
        return []
    out = ["## Faults under load (issue 15)", ""]
    if data.get("status") != "ok":
        return out + [data.get("status", "n/a"), ""]
    steady = data.get("steady", {})
    out += [f"The stack here is the scenario's own: the web server `make up` starts (deploy/scripts/run-web.sh: "
            f"{ctx.opts.server}, the header's workers and threads), varnishd, a Celery worker, two private "
            "redis-servers.", "",
            f"8 reader threads, each alternating the app and the edge over 51 article details (the 6 edited "
            f"ones 3 times each) and the home feed, and a writer PATCHing one of the 6 articles every 0.5 s "
            f"(paused while the checks read). Steady state: {steady.get('app_req_s', 0):,.0f} req/s through the app, "
            f"{steady.get('edge_req_s', 0):,.0f} through the edge. Stale = reads of an edited article (16 through the "
            "app, so every worker, and 2 through the edge, per article) whose title is not PostgreSQL's, after "
            "recovery (the row's checks: outbox delivered, every L1 subscription back).", ""]
    if data.get("png"):
        out += [f"![timeline]({data['png']})", ""]
    out += ["| fault | s | app req/s during | edge req/s | app 5xx (not 503) | app 503 | "
            "app / edge no answer | edits (failed) | outbox after: done / pending / dead | "
            "stale app / edge (reads) | notes |",
            "|---|---:|---:|---:|---:|---:|---|---:|---|---|---|"]
    for row in data["rows"]:
        d, o, st = row["during"], row["outbox"], row["stale"]
        notes = []
        if not row.get("subscribed", True):
            notes.append("an L1 subscription still down")
        if "metrics_status" in row:
            notes.append(f"/metrics {row['metrics_status']}, worker respawned: {row.get('respawned')}")
        if row.get("vs_l2_off") is not None and data.get("redis_vs_l2_off"):
            c = data["redis_vs_l2_off"]
            notes.append(f"app-only readers, alternating with L2 disabled: {c['outage']['req_s']:,.0f} vs "
                         f"{c['l2off']['req_s']:,.0f} req/s, {row['vs_l2_off']:.2f}x (below)")
        if "stale_1s" in row:
            s1 = row["stale_1s"]
            notes.append(f"1 s after the restart: stale app {s1['app']} / edge {s1['edge']} ({s1['reads']} reads); "
                         f"L1 clears per worker {sorted(row['l1_clears'].values())}, l1_flush {row['l1_flushes']:g}; "
                         "the stale column (after recovery) counts after the writer's next edit of each article")
        if row["fault"] == "postgresql":
            notes.append("its own stack on a private cluster, app only (below); the failed edits are the "
                         "outage's 503s")
        outbox = "– (no CDN)" if o is None else f"{o.get('done', 0)} / {o.get('pending', 0)} / {o.get('dead', 0)}"
        out.append(f"| {row['fault']} | {row['seconds']:g} | {d.get('app_req_s', 0):,.0f} | "
                   f"{d.get('edge_req_s', 0):,.0f} | {d.get('app:s5xx', 0) + d.get('app:s503_bare', 0)} | "
                   f"{d.get('app:s503', 0)} | "
                   f"{d.get('app:errors', 0)} / {d.get('edge:errors', 0) + d.get('edge:s5xx', 0)} | "
                   f"{row['edits']} ({row['edit_failures']}) | {outbox} | "
                   f"{st['app']} / {st['edge']} ({st['reads']}) | {'; '.join(notes)} |")
    cmp = data.get("redis_vs_l2_off")
    if cmp:
        ratio = cmp.get("ratio") or 0
        out += ["", "### Redis killed vs L2 disabled", "",
                "A second web server of the same kind, workers and threads with `CACHE_L2_ENABLED=false` (L1 + "
                "PostgreSQL, no Redis call) and the stack's take the load in turns: one slice on the L2-disabled server "
                "before the kill, then during the outage the stack's server and the L2-disabled one alternating, "
                "the same 8 reader threads (same paths, app only: no edge) and the same writer (every 0.5 s, through "
                "the server of the slice) moving with it. CPU = user+sys of that server's workers over the "
                "slice (/proc), per answer.", "",
                "| slice | server | s | answers | req/s | CPU s | CPU ms/req | 5xx (not 503) | 503 | no answer |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

        def line(name, w):
            server = "Redis killed" if w.get("tier", name) == "app" else "L2 disabled"
            cpu = f"{w['cpu_ms_per_req']:.2f}" if w.get("cpu_ms_per_req") is not None else "–"
            return (f"| {name} | {server} | {w['seconds']:g} | {w['requests']:,} | {w['req_s']:,.0f} | "
                    f"{w['cpu_s']:g} | {cpu} | {w.get('s5xx', 0)} | {w.get('s503', 0)} | {w.get('errors', 0)} |")

        for i, w in enumerate(cmp["slices"], 1):
            out.append(line(f"{i} ({w['phase']})", w))
        out.append(line("**all outage slices**", {**cmp["outage"], "tier": "app"}))
        out.append(line("**all L2-disabled slices**", {**cmp["l2off"], "tier": "l2off"}))
        cpu_ratio = ""
        if cmp["outage"].get("cpu_ms_per_req") and cmp["l2off"].get("cpu_ms_per_req"):
            cpu_ratio = f"; CPU per request {cmp['outage']['cpu_ms_per_req'] / cmp['l2off']['cpu_ms_per_req']:.2f}x"
        verdict = "met" if ratio >= 0.9 else "NOT met"
        out += ["", f"Outage req/s / L2-disabled req/s: **{ratio:.2f}x** (target >= 0.9x: {verdict}){cpu_ratio}.", ""]
    out += postgresql_section(data.get("postgresql"))
    return out


def postgresql_section(pg: dict | None) -> list[str]:
    """The PostgreSQL row of the fault table: what each kind of URL answered while it was down."""
    if not pg:
        return []
    out = ["", "### PostgreSQL stopped", ""]
    if pg.get("status") != "ok":
        return out + [pg.get("status", "n/a"), ""]
    cached, cold = pg["cached"], pg["cold"]

    def others(kinds, expected):
        return sum(n for k, n in kinds.items() if k != expected)

    lat, lat_hit = pg["latency_503_ms"], pg["latency_cached_ms"]
    buckets = pg.get("server_5xx_buckets") or {}
    total_5xx = buckets.get("+Inf", 0)
    within = buckets.get("0.05", 0)
    fast = total_5xx > 0 and within == total_5xx if buckets else (lat["n"] > 0 and lat["p99"] <= 50)
    out += [f"A private PostgreSQL cluster (`bench/pgserver.py`; the machine's own is shared and never stopped), "
            f"seeded with its own articles, a web server like the stack's on it and its L2 in a "
            f"db of its own on the cache redis-server. Before the fault the readers take the cached articles (read "
            f"by every worker first) and the writer edits some of them; at the stop (`pg_ctl -m immediate`: every "
            f"connection cut) the same 8 reader threads alternate the cached articles the writer does not edit (an "
            f"edit deletes its article's entries, as it must: one made just before the stop leaves it uncached) with "
            f"articles never read, each a miss that needs the database; the writer pauses from the scan of the keys "
            f"to the stop, and its edits of the outage fail. PostgreSQL came back after {pg['seconds']:g} s; the first miss answered 200 "
            f"{pg['recovered_s']:g} s after the start.", "",
            "| during the outage | answers | req/s | expected | other answers | latency p50 / p95 / p99 / max |",
            "|---|---:|---:|---|---:|---|",
            f"| cached URLs | {sum(cached.values()):,} | {pg['cached_req_s']:,.0f} | 200 | "
            f"{others(cached, 'ok')} | {lat_hit['p50']:.1f} / {lat_hit['p95']:.1f} / {lat_hit['p99']:.1f} / "
            f"{lat_hit['max']:.1f} ms |",
            f"| URLs never cached | {sum(cold.values()):,} | {pg['cold_req_s']:,.0f} | 503 + Retry-After | "
            f"{others(cold, 's503')} | {lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} ms |",
            "",
            f"Cache keys that would have outlived the outage: {pg['keys_lasting']:,}, deleted during it: "
            f"**{pg['keys_deleted']}**."]
    if buckets:
        shares = ", ".join(f"<= {float(le) * 1000:g} ms {buckets.get(le, 0) / total_5xx:.2%}"
                           for le in ("0.0025", "0.005", "0.01", "0.025", "0.05") if total_5xx)
        out += ["", f"Server-side (`newsite_http_request_duration_seconds` of the 5xx GETs, from the first middleware to "
                    f"the response, summed over the workers): {total_5xx:,.0f} answers; {shares}. 503 within 50 ms: "
                    f"**{within:,.0f} of {total_5xx:,.0f}** ({'met' if fast else 'NOT met'}). The reader-side latencies "
                    "above add the load generator's own queueing (8 Python threads sharing the 2 cores)."]
    else:
        out += ["", f"503s within 50 ms (p99 {lat['p99']:.1f} ms, reader-side): {'met' if fast else 'NOT met'}."]
    by_second = {int(k): v for k, v in (pg.get("server_by_second") or pg.get("server_5xx_by_second") or {}).items()}
    if by_second:
        slow = {s: v[1] for s, v in sorted(by_second.items()) if v[1]}
        where = ", ".join(f"{s} s: {n}" for s, n in slow.items()) or "none"
        out += ["", f"Server-side 5xx slower than 50 ms by second of the outage (the histogram read once a second; "
                    f"1 s is the first second, with the requests in flight at the stop): {where}."]
    control = pg.get("server_2xx_buckets") or {}
    if control.get("+Inf"):
        total_2xx, slow_2xx = control["+Inf"], control["+Inf"] - control.get("0.05", 0)
        slow_seconds = sum(1 for v in by_second.values() if len(v) > 3 and v[3])
        out += ["", f"The control, same seconds, same workers: the cached URLs' 200s (an L1 hit; no database, no "
                    f"breaker) slower than 50 ms server-side: **{slow_2xx:,.0f} of {total_2xx:,.0f}** "
                    f"({slow_2xx / total_2xx:.3%}; 503s: {(total_5xx - within) / total_5xx:.3%}), in "
                    f"{slow_seconds} of the {len(by_second)} seconds." if total_5xx else ""]
    out.append("")
    return out




def _mb(value):
    return "–" if value is None else f"{value / 1e6:,.2f} MB"


def _int(value):
    return "–" if value is None else f"{value:,}"


def junk_section(ctx) -> list[str]:
    """Scenario `junk` (issue 16): Redis and Varnish before / after hostile requests."""
    data = ctx.data.get("junk")
    if not data:
        return []
    out = ["## Hostile requests (issue 16)", ""]
    if data.get("status") != "ok":
        return out + [data.get("status", "n/a"), ""]
    runs = data["runs"]
    sent = sum(r["requests"] for r in runs)
    stages = data["stages"]
    loads = ", ".join(f"{r['target']} {r['requests']:,}" for r in runs)
    order = [("before", "before"), ("after", f"after {sent:,} requests"),
             ("idle", f"after {data['idle_seconds']:g} s idle")]
    out += [f"One L1+L2 server ({ctx.opts.server}, {ctx.opts.workers} workers) on the bench database, the run's "
            f"private Redis (db 6 cache) and varnishd with `deploy/varnish/default.vcl` of commit "
            f"`{data['vcl_commit']}` in front. Before: ordinary reads (pages 1..5, 20 articles as API and page, "
            "3 searches, twice each, through Varnish and directly). The load: `bench/lua/junk.lua`, "
            f"{loads}. The invalidation: "
            f"`caching.invalidate_tags([\"articles\", \"search\"])` timed in the harness (Django, same Redis; its "
            "CDN outbox rows are written too), its Redis commands from SLOWLOG (`slowlog-log-slower-than 0`). "
            f"The \"after {data['idle_seconds']:g} s idle\" column also follows the invalidation of the column before.", "",
            "| figure | " + " | ".join(label for _, label in order) + " |", "|---|" + "---:|" * len(order)]

    def row(name, fn):
        out.append(f"| {name} | " + " | ".join(fn(stages[key]) for key, _ in order) + " |")

    row("Redis used_memory (INFO memory)", lambda s: f"{_mb(s['used_memory'])} ({s['used_memory']:,} B)")
    row("Redis keys (DBSIZE, cache db)", lambda s: _int(s["keys"]))
    row("Redis expired_keys (INFO stats, cumulative)", lambda s: _int(s["expired_keys"]))
    row("Redis evicted_keys (cumulative)", lambda s: _int(s["evicted_keys"]))
    row("Varnish objects (MAIN.n_object)", lambda s: _int(s.get("n_object")))
    row("Varnish storage (SMA.s0.g_bytes)", lambda s: _mb(s.get("varnish_bytes")))
    row("invalidate_tags(articles, search), harness ms", lambda s: f"{s['invalidation']['ms']:.1f}")
    row("its largest Redis script call (SLOWLOG), µs",
        lambda s: f"{s['invalidation']['largest_script_us']:,} ({s['invalidation']['largest_script'] or '–'})")
    row("its script calls / their total µs",
        lambda s: f"{s['invalidation']['script_calls']} ("
        + ", ".join(f"{k} {v}" for k, v in s["invalidation"].get("script_names", {}).items())
        + f") / {s['invalidation']['script_us_total']:,}")
    row("its largest Redis command of any kind, µs",
        lambda s: f"{s['invalidation']['largest_us']:,} ({s['invalidation']['largest'] or '–'})")
    out.append("| Redis keys right after that invalidation | – | "
               f"{_int(stages['after'].get('keys_after_invalidation'))} | – |")

    out += ["", "| load | requests | req/s | p50 ms | p99 ms | max ms | status codes | socket errors |",
            "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in runs:
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items()))
        out.append(f"| {r['target']} | {r['requests']:,} | {r['req_s']:,.0f} | {r['p50'] / 1000:.1f} | "
                   f"{r['p99'] / 1000:.1f} | {r['max'] / 1000:.0f} | {codes} | {r['errors']} |")
    short = [r for r in runs if r.get("stopped_by_budget")]
    if short:
        out += ["", f"**The load stopped at its time budget** ({data.get('load_budget_seconds', 0):g} s, "
                "BENCH_JUNK_SECONDS) after " + ", ".join(f"{r['requests']:,} of {r['planned']:,} ({r['target']})"
                                                         for r in short)
                + f": {sent:,} of {data['requests_planned']:,} planned requests were sent."]
    five = Counter()
    for r in runs:
        five.update({k: v for k, v in r["statuses"].items() if int(k) >= 500})
    out += ["", f"5xx responses: **{sum(five.values()):,}**" + (f" ({dict(five)})" if five else " (none)")
            + (f"; server log tail: `{data['server_log']}`" if data.get("server_log") else ""), ""]

    mix = Counter()
    for r in runs:
        mix.update(r["mix"])
    total = sum(mix.values()) or 1
    probes = data.get("probes", {})
    out += ["Request mix (requests sent, both loads) and the status codes of a few requests of each kind "
            "made again afterwards (through Varnish / directly):", "",
            "| kind | requests | share | statuses via Varnish | statuses direct |", "|---|---:|---:|---|---|"]
    for kind, count in sorted(mix.items(), key=lambda kv: -kv[1]):
        p = probes.get(kind, {})
        fmt = lambda d: ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) or "–"  # noqa: E731
        out.append(f"| `{kind}` | {count:,} | {count / total:.1%} | {fmt(p.get('edge', {}))} | {fmt(p.get('app', {}))} |")

    cmds = data.get("redis_commands", {})
    app_requests = sum(r["requests"] for r in runs)
    slow = data.get("load_slowlog", {})
    out += ["", f"Redis during the load: {sum(cmds.values()):,} commands ({sum(cmds.values()) / max(1, app_requests):.2f} "
            f"per request; {', '.join(f'{k} {v:,}' for k, v in list(cmds.items())[:8])}); slowest command "
            f"(SLOWLOG, > 1 ms kept): {slow.get('largest') or 'none over 1 ms'}"
            + (f" {slow['largest_us']:,} µs, {slow['entries']} entries over 1 ms" if slow.get("largest") else ""), ""]

    patterns = data["patterns"]
    names = sorted(set().union(*(p.keys() for p in patterns.values())),
                   key=lambda n: -max(p.get(n, 0) for p in patterns.values()))
    out += ["Redis keys by pattern (SCAN of the cache db; digits and hex runs as #):", "",
            "| pattern | " + " | ".join(label for _, label in order) + " |", "|---|" + "---:|" * len(order)]
    for name in names[:15]:
        out.append(f"| `{name}` | " + " | ".join(_int(patterns[key].get(name, 0)) for key, _ in order) + " |")
    if data.get("new_keys_sample"):
        out += ["", "A sample of the keys the load added (`redis-cli --scan`, minus the keys before):", "", "```"]
        out += [k[:160] for k in data["new_keys_sample"]] + ["```"]
    h = data.get("hostile")
    if h:
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(h["statuses"].items()))
        out += ["", "One hostile client (bench/hostile.py: one address, 8 connections, searches matching every "
                "article, broad OR searches, random feed pages up to 2,500; a server that exempts no address):", "",
                "| requests | req/s | status codes | database CPU s per s |", "|---:|---:|---|---:|",
                f"| {h['requests']:,} | {h['req_s']:,.0f} | {codes} | **{h['db_cpu_per_second']:.2f}** |"]
    return out + [""]


def chart(results, scenario, workloads, modes, path: Path, title: str) -> bool:
    """Two panels, log scale: req/s as a ratio to the floor of the same workload, and p99 in ms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(1, len(modes))
    drew = False
    for i, mode in enumerate(modes):
        xs, ratio, p99 = [], [], []
        for j, wl in enumerate(workloads):
            r = _find(results, scenario, wl, mode)
            floor = _find(results, scenario, wl, "floor" if scenario == "throughput" else modes[0])
            by_rps = ratio_of(r, floor)
            if by_rps is not None:
                xs.append(j + i * width)
                ratio.append(by_rps[0])
                p99.append(r.p99_ms)
        if xs:
            drew = True
            axes[0].bar(xs, ratio, width, label=MODE_LABELS.get(mode, mode))
            axes[1].bar(xs, p99, width, label=MODE_LABELS.get(mode, mode))
    base = "floor" if scenario == "throughput" else modes[0]
    for ax, ylabel in ((axes[0], f"req/s as a ratio to {base} (log, higher is better)"),
                       (axes[1], "p99 latency ms (log, lower is better)")):
        ax.set_yscale("log")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(workloads))])
        ax.set_xticklabels(workloads)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0].axhline(1.0, color="black", linewidth=0.8)
    axes[0].set_title("median of the per-cycle ratios (neighbouring slices)", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    if drew:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drew


def _schedule_text(opts) -> str:
    slice_s = getattr(opts, "slice", 0) or 0
    cold = opts.cold_start
    if slice_s > 0:
        cycles = max(1, round(opts.duration / slice_s))
        return (f"{cycles} cycles of {slice_s} s slices per mode and workload, the modes alternating (order rotated "
                f"each cycle), {'Redis db and Varnish emptied once per workload and round before the warm-ups, ' if cold else ''}"
                f"{opts.rounds} round(s), slices of every round pooled")
    return (f"{opts.duration:g} s per mode and workload, "
            f"{'Redis db and Varnish emptied before each cached mode, ' if cold else ''}"
            f"{opts.rounds} round(s), rounds pooled")


def write(ctx, results) -> list[Path]:
    opts = ctx.opts
    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    stem = f"{date}-{opts.scenario_name}"
    md_path, png_path = out_dir / f"{stem}.md", out_dir / f"{stem}.png"
    data = ctx.data
    lines = [f"# newsite benchmark: {opts.scenario_name} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"- commit `{_git_rev()}`; {os.cpu_count()} cores ({_cpu()}); "
             f"pinning: {'server + Redis + Varnish on core 0, wrk on core 1 (taskset)' if TASKSET else 'none (taskset unavailable)'}",
             f"- server: {opts.server}, {opts.workers} workers" + (f" x {opts.threads} threads" if opts.server != "gunicorn-sync" else "")
             + f"; load: wrk -t1 -c{opts.connections}, {opts.warmup:g} s warm-up ({opts.zipf_warmup:g} s for Zipf) + "
             + _schedule_text(opts),
             f"- data: {data.get('articles_article', 0):,} articles ({data.get('published', 0):,} published), "
             f"{data.get('articles_comment', 0):,} comments, {data.get('articles_like', 0):,} likes"
             + (f"; {data['reason']}" if data.get("reason") else "")]
    if data.get("zipf_exponent"):
        lines.append(f"- Zipf: exponent {data['zipf_exponent']:.3f} over {data['published']:,} published articles "
                     "(the hottest 5% of rows get 92% of reads); hot article: the Zipf rank-1 id "
                     f"{data['hot_id']}; feed: `/api/articles/?page=1..5` uniformly")
    lines.append(f"- Redis: {'private redis-server started by the harness' if opts.redis == 'private' else opts.redis_url}; "
                 "DB queries per request counted by an execute wrapper in every worker (see below for the "
                 "PostgreSQL cross-check); Redis commands from INFO commandstats deltas")
    lines += ["", f"![chart]({png_path.name})", ""]
    throughput_rows = _by(results, "throughput")
    if throughput_rows:
        lines += ["## Targets (SPEC section 8)", ""] + targets(results, ctx) + [""]
        lines += ["## Throughput and latency", "",
                  "**x floor** (and the targets' ratios) = the median of the per-cycle ratios to the floor: each cycle "
                  "measures every mode once, so a ratio compares slices that were neighbours in time; the range in "
                  "brackets is the lowest and highest cycle. req/s = all requests of a mode's slices / their duration; "
                  "latency = the median over its slices of each slice's wrk percentile. The floor and "
                  "no-cache modes make 0 Redis commands by design; hit ratios come from `newsite_cache_requests_total` "
                  "(per tier), from SET counts for cache_page (~ estimate), and from varnishstat for the edge.", "",
                  CPU_NOTE, ""]
        lines += throughput_tables(results, opts.workloads, opts.modes)
        lines += prewarm_note(throughput_rows)
        lines += gc_section({MODE_LABELS.get(mode, mode): gens for mode, gens in data.get("gc", {}).items()})
    lines += coldkey_section(ctx)
    if ctx.fresh:
        lines += fresh_section(ctx)
    lines += servers_section(results)
    lines += l1sizes_section(results)
    lines += warmstart_section(ctx)
    lines += coherence_section(ctx)
    lines += faults_section(ctx)
    lines += junk_section(ctx)
    if "xact_end" in data and "xact_start" in data:
        lines += ["## Cross-check of the query counts", "",
                  f"PostgreSQL `pg_stat_database` counted {data['xact_end'] - data['xact_start']:,} transactions "
                  f"(autocommit: one per statement) on this database during the run; the workers' execute wrappers "
                  f"counted {data.get('queries_counted', 0):,.0f} statements (warm-ups included; the harness's own "
                  "queries and the servers' connection setup make up the difference).", ""]
    lines += ["## Reproduce", "", "```",
              f"make bench BENCH_ARGS=\"{opts.argv_text}\"" if opts.argv_text else "make bench", "```", ""]
    drew = False
    if throughput_rows:
        drew = chart(results, "throughput", opts.workloads, opts.modes, png_path, f"newsite bench {stem}: {opts.server} x{opts.workers}")
    elif _by(results, "servers"):
        kinds = list(dict.fromkeys(r.mode for r in _by(results, "servers")))
        workloads = list(dict.fromkeys(r.workload for r in _by(results, "servers")))
        drew = chart(results, "servers", workloads, kinds, png_path, f"newsite bench {stem}: servers")
    elif _by(results, "l1sizes"):
        drew = l1sizes_chart(results, png_path, f"newsite bench {stem}: Zipf, cost by L1 size ({opts.server} x{opts.workers})")
    if not drew:
        lines = [ln for ln in lines if not ln.startswith("![chart]")]
    md_path.write_text("\n".join(lines))
    written = [md_path] + ([png_path] if drew else [])
    write_index(out_dir)
    return written


def write_index(out_dir: Path) -> Path:
    """LATEST.md: every results file of the directory, newest first (the date leads the name)."""
    files = sorted((p for p in out_dir.glob("*.md") if p.name != "LATEST.md"), key=lambda p: p.name, reverse=True)
    lines = ["# Benchmark results, newest first", "", "Written by `make bench` (docs/bench.md).", ""]
    lines += [f"- [{p.name}]({p.name})" for p in files]
    latest = out_dir / "LATEST.md"
    latest.write_text("\n".join(lines) + "\n")
    return latest
