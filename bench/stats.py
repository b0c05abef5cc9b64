"""Figures from samples: percentiles, and the best round of each mode x workload."""


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
    picked by the same rule.
    """
    groups = {}
    for r in results:
        groups.setdefault((r.scenario, r.workload, r.mode), []).append(r)
    out = []
    for rows in groups.values():
        ok = [r for r in rows if r.status == "ok"]
        out.append(max(ok, key=lambda r: r.req_s) if ok else rows[0])
    return out
