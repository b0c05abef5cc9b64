"""bench/results/<date>-hosts.md (and the figures as JSON beside it): the hosts scenario's report."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bench.hosts import APP_WORKERS, APPS, EDGES
from bench.report import _git_rev
from bench.stack import ROOT

ROUTINE_EVENTS = ("invalidations:tag", "invalidations:l1_message")  # every write's: not listed per phase


def _ms(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _n(value) -> str:
    return f"{value:,}"


def _bad_answers(no_version: dict) -> tuple[int, int, int]:
    """(answers >= 500 but 503, 503s, no answer) of a phase's reads without a version."""
    other = sum(n for k, n in no_version.items() if int(k.split(":")[1]) >= 500 and not k.endswith(":503"))
    s503 = sum(n for k, n in no_version.items() if k.endswith(":503"))
    none = sum(n for k, n in no_version.items() if k.endswith(":0"))
    return other, s503, none


def lines(result: dict, opts) -> list[str]:
    plan, phases, tiers, part = result["plan"], result["phases"], result["tiers"], result["partition"]
    bounds = result["bounds"]
    EDGE_LAG, HEAL_GRACE, STALE_AFTER = bounds["edge_lag"], bounds["heal_grace"], bounds["stale_after"]  # noqa: N806
    PARTITIONED, RESTARTED_EDGE = bounds["partitioned"], bounds["restarted_edge"]  # noqa: N806
    writes, outbox = result["writes"], result["outbox"]
    past_lag = sum(tiers[e]["stale_past_edge_lag"] for e in EDGES)
    out = [
        f"# newsite hosts scenario — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`make bench BENCH_ARGS=\"{opts.argv_text}\"` at {_git_rev()}, {os.cpu_count()} CPUs (every host, "
        f"reader and the harness share them; load average at the end {result['loadavg'][0]:.1f}).",
        "",
        f"Cluster (bench/hosts.py, namespaces of bench/netns.py): {len(APPS)} app hosts x{APP_WORKERS} workers "
        f"({opts.server}, L1+L2, reads on the standby), {len(EDGES)} Varnish edges (cluster VCL over the three), "
        "a Celery host (worker + beat), Redis, a PostgreSQL primary and an asynchronous standby "
        f"({opts.hosts_replica_delay:g} s apply delay). Readers: {result['readers']} processes per tier on "
        f"{len(result['articles'])} hot articles; a write every {plan['edit_interval']:g} s through "
        f"{', '.join(APPS)} in turn (API and admin alternately; {PARTITIONED} skipped while cut off). Plan: "
        f"{plan['baseline']:g} s baseline, then {', '.join(plan['faults'])}, each {plan['fault']:g} s of fault + "
        f"{plan['recovery']:g} s (the edge: a restart, then the rest).",
        "",
        "## Targets (issue 27)",
        "",
        "| property | target | measured |",
        "|---|---|---|",
        f"| stale app reads (read started after the write returned), {len(APPS)} hosts | 0 in >= 1,000,000 | "
        f"**{_n(result['app_stale'])}** in {_n(result['app_reads'])} (the partitioned host's reads from the cut to "
        f"{HEAL_GRACE:g} s after the heal apart, below) |",
        f"| stale edge reads after the write returned, Varnish edges | 0 in >= 1,000,000 (or the residue) | "
        f"**{_n(result['edge_stale'])}** in {_n(result['edge_reads'])}; {_n(past_lag)} began > "
        f"{EDGE_LAG * 1000:.0f} ms after the write; per phase below |",
        f"| edits left stale anywhere {STALE_AFTER:g} s after the write | 0 | **{result['stale_after_2s']}** of "
        f"{writes['count']} ({result['stale_after_2s_outside_partition']} without the partitioned host); "
        f"{len(result['stale_2s_after_write_or_repair'])} still stale {STALE_AFTER:g} s after the write or the "
        "repair of its fault |",
    ]
    if part:
        out.append(f"| partitioned host: reads older than the bound ({part['bound_s']:g} s) | 0 | "
                   f"**{_n(part['older_than_bound'])}** of {_n(part['reads'])} reads of {part['host']} "
                   f"({_n(part['stale'])} stale at all, the worst "
                   f"{_ms(part['lag_max'] * 1000 if part['lag_max'] is not None else None)} ms after the write) |")
    bad = {name: _bad_answers(p["no_version"]) for name, p in phases.items()}
    out += [
        "| every fault: 5xx other than planned 503s | 0 | "
        + "; ".join(f"{name} {other}" for name, (other, _, _) in bad.items()) + " |",
        f"| every fault: outbox rows lost | 0 | **{outbox['lost']}** of {outbox['rows']} rows "
        f"({outbox['by_status']}) |",
        f"| write latency p50/p99 | reported | {_ms(writes['p50_ms'])} / {_ms(writes['p99_ms'])} ms "
        "(" + ", ".join(f"{k} {_ms(v['p50_ms'])} / {_ms(v['p99_ms'])} ms" for k, v in writes["by_kind"].items())
        + "); a write returns once every Varnish node acknowledged its purge (cdn/edge_ack.py) |",
        "",
        "## Per phase",
        "",
        "Reads and writes by when they began (a phase: its fault, then its recovery). *No answer*: a read "
        "without an HTTP answer (connection refused or timed out), by tier. *Edits stale > 2 s*: writes of the "
        "phase whose last stale read (any tier) began more than 2 s after the write returned.",
        "",
        "| phase | s (fault) | reads | 5xx not 503 | 503 | no answer | writes | write p50 / p99 ms | stale app | "
        "stale edge (> 100 ms) | edge lag p50 / p99 / max ms | purge delivered p50 / p99 ms | "
        "edits stale > 2 s (without the partitioned host) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in phases.items():
        other, s503, none = bad[name]
        where = ", ".join(f"{k.split(':')[0]} {n}" for k, n in p["no_version"].items() if k.endswith(":0"))
        lag, delivered = p["edge_lag_ms"], outbox.get("delivery_by_phase", {}).get(name, {})
        where_503 = ", ".join(f"{k.split(':')[0]} {n}" for k, n in p["no_version"].items() if k.endswith(":503"))
        s503 = f"{s503} ({where_503})" if where_503 else s503
        out.append(f"| {name} | {p['seconds']:g} ({p['fault_s']:g}) | {_n(p['reads'])} | {other} | {s503} | {none}"
                   f"{f' ({where})' if where else ''} | {p['writes']} | {_ms(p['write_p50_ms'])} / "
                   f"{_ms(p['write_p99_ms'])} | {p['stale_app']} | {p['stale_edge']} ({lag['past_edge_lag']}) | "
                   f"{_ms(lag['p50'])} / {_ms(lag['p99'])} / {_ms(lag['max'])} | "
                   f"{_ms(delivered.get('p50'))} / {_ms(delivered.get('p99'))} | {p['stale_after_2s']} "
                   f"({p['stale_after_2s_outside_partition']}) |")
    out += ["", "What the app hosts counted in each phase (newsite_cache_invalidations_total by kind but the "
            "routine `tag` and `l1_message`, newsite_cache_redis_errors_total, "
            "newsite_cache_replica_fallbacks_total; summed over the hosts, by host in the JSON):", ""]
    for name, p in phases.items():
        summed: dict[str, int] = {}
        for key, n in p.get("events", {}).items():
            what = key.split(":", 1)[1]
            if what not in ROUTINE_EVENTS:
                summed[what] = summed.get(what, 0) + n
        out.append(f"- {name}: " + (", ".join(f"{k} {v:,}" for k, v in sorted(summed.items())) or "none"))
    out += ["", "## Per tier", "",
            "| tier | reads | no version | stale | stale > 100 ms | lag p99 ms | worst lag ms |", "|---|---|---|---|---|---|---|"]
    for tier, t in tiers.items():
        out.append(f"| {tier} | {_n(t['reads'])} | {_n(t['errors'])} | {_n(t['stale'])} | {_n(t['stale_past_edge_lag'])} | "
                   f"{_ms(t['lag_p99'] * 1000 if t['lag_p99'] is not None else None)} | "
                   f"{_ms(t['lag_max'] * 1000 if t['lag_max'] is not None else None)} |")
    if part:
        out += ["", f"## The partitioned host ({part['host']}, cut off from Redis by a blackhole route)", "",
                f"Reads of {part['host']} from {part['from_s']:g} s to {part['to_s']:g} s of the run: {_n(part['reads'])}, "
                f"X-Cache {part['x_cache']}; {_n(part['stale'])} showed a version older than a write returned before "
                f"they began, {_n(part['older_than_bound'])} one returned more than {part['bound_s']:g} s before. "
                "A host that has not heard Redis for L1_TRUST_SECONDS stops answering from L1 (docs/scaling.md, "
                "\"A host cut off from Redis\"); a stale read within the bound is allowed.", ""]
        for s in part["worst"][:5]:
            out.append(f"- article {s['article']}: saw v{s['version']}, expected >= v{s['expected']}, "
                       f"{s['lag_ms']:,.0f} ms after the write (X-Cache {s['x_cache']}, worker {s['worker']})")
    out += ["", "## Outbox and the end", "",
            f"Rows of the run: {outbox['rows']} {outbox['by_status']}, none pending after waiting {outbox['waited_s']:g} s "
            f"(the re-drive runs every 30 s); write -> delivered p50 {_ms(outbox['delivery_ms']['p50'])} ms, "
            f"p99 {_ms(outbox['delivery_ms']['p99'])} ms, max {_ms(outbox['delivery_ms']['max'])} ms (the Celery "
            f"host's outage and {RESTARTED_EDGE}'s restart included).",
            "",
            f"Writes stopped, {STALE_AFTER:g} s later every article read through every tier: "
            f"{len(result['final']['stale'])} stale of {result['final']['reads']} reads.",
            f"Edits refused by a host (tried on the next one): {len(result['write_failures'])}"
            + (f": {result['write_failures'][:5]}" if result["write_failures"] else "."),
            ""]
    stale_edges = [s for e in EDGES for s in tiers[e]["worst"]][:5]
    if stale_edges:
        out += ["Worst stale edge reads:", ""]
        out += [f"- {s['tier']} article {s['article']}: saw v{s['version']}, expected >= v{s['expected']}, "
                f"{s['lag_ms']:,.0f} ms after the write (X-Cache-Edge {s['edge']})" for s in stale_edges]
    return out


def write(result: dict, opts) -> list[Path]:
    out_dir = ROOT / opts.out_dir if not Path(opts.out_dir).is_absolute() else Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y-%m-%d', time.gmtime())}-{opts.scenario_name}"
    md, raw = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text("\n".join(lines(result, opts)) + "\n")
    raw.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return [md, raw]
