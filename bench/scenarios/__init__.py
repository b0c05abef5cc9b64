"""The benchmark's scenarios, in the order a run measures them.

Each module has `run(ctx)` (measures, stores its figures on the Context) and `SHARED_SERVERS`:
the app servers it reads from ctx.servers besides those of --modes (started once for all), or
None when it starts servers of its own. A module with `IN_ALL = False` runs only when named
(`--scenario coherence`), not in `all`. A module with `STANDALONE = True` (hosts) needs none of
the run's stack: named alone, bench/run.py calls its `run_standalone(opts)` instead.
"""

from bench.scenarios import (
    coherence,
    coldkey,
    faults,
    freshness,
    hosts,
    junk,
    l1sizes,
    servers,
    throughput,
    warmstart,
)

SCENARIOS = {
    "throughput": throughput,
    "coldkey": coldkey,
    "freshness": freshness,
    "servers": servers,
    "warmstart": warmstart,
    "coherence": coherence,
    "faults": faults,
    "junk": junk,
    "hosts": hosts,
    "l1sizes": l1sizes,
}
