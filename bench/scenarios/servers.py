"""Scenario `servers`: gunicorn sync vs gthread vs granian (issue 17.5) on the floor and, with
L1+L2 settings, on each workload of --workloads (hot, zipf, feed), the servers alternating in
slices like the throughput scenario's modes. They share the L2 (one Redis db); each has its L1s."""

from bench.context import Context, Result, log
from bench.measure import Entry, run_rounds
from bench.stack import AppServer, Unavailable

SERVER_KINDS = ("gunicorn-sync", "gunicorn-gthread", "granian")
SHARED_SERVERS = None  # starts servers of its own


def run(ctx: Context) -> None:
    """gunicorn sync vs gthread vs granian, same worker count, l1l2 settings, floor + hot."""
    opts = ctx.opts
    started = {}
    for kind in SERVER_KINDS:
        try:
            started[kind] = ctx.stack.start_app("l1l2", ctx.env, kind, opts.workers, opts.threads)
            log(f"server comparison: {kind} on :{started[kind].port}")
        except Unavailable as exc:
            started[kind] = f"n/a: {exc}"
            log(started[kind])
    for workload in ("floor", *opts.workloads):
        mode = "floor" if workload == "floor" else "l1l2"
        entries = [Entry(kind, mode, server) for kind, server in started.items() if isinstance(server, AppServer)]
        rows = run_rounds(ctx, "servers", workload, entries, opts.rounds, log)
        rows += [Result("servers", workload, kind, status=server)
                 for kind, server in started.items() if isinstance(server, str)]
        for res in rows:
            ctx.results.append(res)
            log(f"servers {workload:5} {res.mode:16} "
                + (f"{res.req_s:8.0f} req/s app CPU {res.cpu_ms.get('app', float('nan')):.3f} ms/req "
                   f"p99 {res.p99_ms:.1f} ms" if res.status == "ok" else res.status))
    for server in started.values():
        if isinstance(server, AppServer):
            ctx.stack.stop_app(server)
