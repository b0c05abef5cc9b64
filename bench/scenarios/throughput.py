"""Scenario `throughput`: every mode of --modes on every workload of --workloads, the modes of one
workload alternating in --slice-second slices within each round (req/s, latency, CPU per request
of the app server, Varnish and Redis, DB queries, Redis commands and hit ratios per request)."""

from bench import probes
from bench.context import Context, log
from bench.measure import Entry, run_rounds
from bench.stack import AppServer

# App servers this scenario reads from ctx.servers besides those of --modes.
SHARED_SERVERS = frozenset()


def run(ctx: Context) -> None:
    opts = ctx.opts
    for workload in opts.workloads:
        # bare answers the hot article's bytes: a figure for that workload only
        entries = [Entry(mode, mode) for mode in opts.modes if mode != "bare" or workload == "hot"]
        for res in run_rounds(ctx, "throughput", workload, entries, opts.rounds, log):
            ctx.results.append(res)
            if res.status == "ok":
                cpu = " ".join(f"{k} {v:.3f}" for k, v in res.cpu_ms.items())
                log(f"{workload:5} {res.mode:10} {res.req_s:8.0f} req/s  CPU ms/req {cpu or '–'}  "
                    f"p99 {res.p99_ms:6.1f} ms  db/req {res.db_per_req:.3f}  redis/req {res.redis_per_req:.2f}  {res.hit}")
            else:
                log(f"{workload:5} {res.mode:10} {res.status}")
    # Garbage collections of each mode's server over the whole run (issue 29: where the tail goes).
    ctx.data["gc"] = {mode: probes.gc_pauses(server.metrics_dir) for mode, server in ctx.servers.items()
                      if mode in opts.modes and isinstance(server, AppServer)}
