"""The benchmark's scenarios, in the order a run measures them.

Each module has `run(ctx)` (measures, stores its figures on the Context) and `SHARED_SERVERS`:
the app servers it reads from ctx.servers besides those of --modes (started once for all), or
None when it starts servers of its own.
"""

from bench.scenarios import coldkey, freshness, junk, servers, throughput, warmstart

SCENARIOS = {
    "throughput": throughput,
    "coldkey": coldkey,
    "freshness": freshness,
    "servers": servers,
    "warmstart": warmstart,
    "junk": junk,
}
