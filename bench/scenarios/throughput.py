"""Scenario `throughput`: every mode of --modes on every workload of --workloads, interleaved in
rounds (req/s, latency, DB queries, Redis commands and hit ratios per request)."""

import subprocess

from bench.context import Context, Result, log
from bench.measure import measure

# App servers this scenario reads from ctx.servers besides those of --modes.
SHARED_SERVERS = frozenset()


def run(ctx: Context) -> None:
    opts = ctx.opts
    for rnd in range(opts.rounds):
        for workload in opts.workloads:
            for mode in opts.modes:
                try:
                    res = measure(ctx, "throughput", workload, mode)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    res = Result("throughput", workload, mode, status=f"n/a: load generator failed: {exc}")
                res.extra["round"] = rnd
                ctx.results.append(res)
                if res.status == "ok":
                    log(f"{workload:5} {mode:10} {res.req_s:8.0f} req/s  p99 {res.p99_ms:6.1f} ms  "
                        f"db/req {res.db_per_req:.3f}  redis/req {res.redis_per_req:.2f}  {res.hit}")
                else:
                    log(f"{workload:5} {mode:10} {res.status}")
