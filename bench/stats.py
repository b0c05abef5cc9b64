"""Figures from samples: percentiles, the best round of each mode x workload, and ratios of two
modes computed from neighbouring slices."""


def percentile(values, p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def best_results(results):
    """One row per (scenario, workload, mode): the round with the most req/s.

    The machine may be shared: the best round is the one least disturbed, and every mode is
    picked by the same rule. The throughput and servers scenarios pool their rounds' slices into
    one row per mode (bench/measure.run_rounds), so their rows pass through unchanged.
    """
    groups = {}
    for r in results:
        groups.setdefault((r.scenario, r.workload, r.mode), []).append(r)
    out = []
    for rows in groups.values():
        ok = [r for r in rows if r.status == "ok"]
        out.append(max(ok, key=lambda r: r.req_s) if ok else rows[0])
    return out


def slice_cpu_per_request(s: dict) -> float | None:
    """Server-side CPU seconds per request of one slice: every tree measured (app, Varnish, Redis:
    all of them sit on the servers' core), or None when no CPU was read."""
    return sum(s["cpu_s"].values()) / s["served"] if s.get("cpu_s") and s.get("served") else None


def per_cycle_ratios(slices, base_slices, metric: str = "req_s") -> list[float]:
    """For every (round, cycle) both sides were measured in: `metric` "req_s" gives
    req/s / base req/s; "cpu" gives base CPU per request / CPU per request (a capacity ratio:
    above 1 means cheaper than the base, as a req/s ratio above 1 means faster)."""
    base = {(s["round"], s["cycle"]): s for s in base_slices}
    out = []
    for s in slices:
        b = base.get((s["round"], s["cycle"]))
        if b is None:
            continue
        if metric == "req_s":
            if b["req_s"]:
                out.append(s["req_s"] / b["req_s"])
        else:
            mine, theirs = slice_cpu_per_request(s), slice_cpu_per_request(b)
            if mine and theirs:
                out.append(theirs / mine)
    return out


def paired_ratio(slices, base_slices, metric: str = "req_s") -> tuple[float, float, float, int] | None:
    """(median, min, max, cycles) of the per-cycle ratios, or None when no cycle pairs up."""
    ratios = per_cycle_ratios(slices, base_slices, metric)
    if not ratios:
        return None
    return percentile(ratios, 50), min(ratios), max(ratios), len(ratios)
