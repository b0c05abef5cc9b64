"""Scenario `servers`: gunicorn sync vs gthread vs granian on the floor and the hot article."""

import subprocess

from bench.context import Context, Result, log
from bench.measure import measure
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
    for rnd in range(opts.rounds):
        for workload in ("floor", "hot"):
            for kind in SERVER_KINDS:
                server = started[kind]
                if isinstance(server, str):
                    res = Result("servers", workload, kind, status=server)
                else:
                    try:
                        res = measure(ctx, "servers", workload, "floor" if workload == "floor" else "l1l2",
                                      server_override=server)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        res = Result("servers", workload, kind, status=f"n/a: load generator failed: {exc}")
                    res.mode = kind
                res.extra["round"] = rnd
                ctx.results.append(res)
                log(f"servers {workload:5} {kind:16} "
                    + (f"{res.req_s:8.0f} req/s p99 {res.p99_ms:.1f} ms" if res.status == "ok" else res.status))
    for server in started.values():
        if isinstance(server, AppServer):
            ctx.stack.stop_app(server)
