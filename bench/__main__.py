"""`python -m bench` / `make bench BENCH_ARGS="..."`: the side-by-side benchmark (SPEC section 8).

Examples:
  make bench                                         # everything, 10 s per mode x workload
  python -m bench --scenario throughput --modes floor,l1l2 --workloads hot --duration 5
  python -m bench --scenario servers                 # gunicorn sync vs gthread vs granian
  python -m bench --scenario coherence               # stale-read sampler, every tier, ~13 min
  python -m bench --scenario hosts                    # the sampler across namespaced hosts, faults (root)
  python -m bench --smoke --articles 2000 --database-url postgres://127.0.0.1:5432/newsite_bench_smoke
"""

import argparse
import sys

from bench.context import MODES, WORKLOADS
from bench.run import run
from bench.scenarios import SCENARIOS as SCENARIO_MODULES
from bench.scenarios.faults import FAULTS
from bench.scenarios.hosts import FAULTS as HOST_FAULTS

SCENARIOS = tuple(SCENARIO_MODULES)
IN_ALL = tuple(name for name, module in SCENARIO_MODULES.items() if getattr(module, "IN_ALL", True))


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="all",
                   help=f"all ({', '.join(IN_ALL)}), or a comma list of {', '.join(SCENARIOS)} (default all)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds measured per mode x workload and round (10), in --slice-second slices")
    p.add_argument("--slice", type=int, default=2,
                   help="seconds per slice (2; wrk takes whole seconds): within a round, the modes of one workload "
                        "alternate in slices, the order rotated each cycle, --duration / --slice cycles; 0: one "
                        "block of --duration per mode, tiers emptied before each cached mode")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each measurement (3)")
    p.add_argument("--zipf-warmup", type=float, default=10.0,
                   help="warm-up seconds before each Zipf measurement (10): the long tail needs longer")
    p.add_argument("--zipf-prewarm", action="store_true",
                   help="run manage.py warm_cache --all after the flush, before the Zipf warm-up of l2, l1l2, varnish")
    p.add_argument("--no-cold-start", dest="cold_start", action="store_false",
                   help="keep Redis db and Varnish contents between measurements (default: flush before each cached mode)")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds (1): each empties the tiers, warms every mode up and runs its cycles; the slices of "
                        "all rounds are pooled (ratios: median of the per-cycle ratios)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    p.add_argument("--cold-clients", type=int, default=256, help="concurrent clients of the cold-key scenario")
    p.add_argument("--cold-server", default="gunicorn-gthread",
                   choices=("gunicorn-sync", "gunicorn-gthread", "granian"),
                   help="server of the cold-key scenario (gunicorn-gthread: requests really run concurrently)")
    p.add_argument("--cold-threads", type=int, default=16, help="threads per worker in the cold-key scenario (16)")
    p.add_argument("--fresh-iterations", type=int, default=None, help="writes timed by the freshness scenario (20; 5 with --smoke)")
    p.add_argument("--server", default="granian", choices=("gunicorn-sync", "gunicorn-gthread", "granian"),
                   help="the app servers' kind (granian: what make up runs, deploy/scripts/run-web.sh)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4, help="threads per worker (gthread, granian)")
    p.add_argument("--articles", type=int, default=50_000, help="demo articles seeded once (50000)")
    p.add_argument("--database-url", default="postgres://127.0.0.1:5432/newsite_bench")
    p.add_argument("--redis", choices=("private", "shared"), default="private",
                   help="private: a redis-server of the run's own (exact commandstats); shared: --redis-url")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    p.add_argument("--celery-url", default="redis://127.0.0.1:6379/7")
    p.add_argument("--key-prefix", default="newsite-bench")
    p.add_argument("--out-dir", default="bench/results")
    p.add_argument("--warm-minute", type=float, default=60.0,
                   help="seconds of Zipf load measured after a cold or warm start (warmstart scenario, 60)")
    p.add_argument("--warm-slices", type=int, default=6, help="slices of that minute reported separately (6)")
    p.add_argument("--warm-phases", default="cold,warm,all",
                   help="warmstart phases: cold, warm (manage.py warm_cache), all (warm_cache --all); default all three")
    p.add_argument("--coherence-duration", type=float, default=None,
                   help="seconds the coherence sampler runs (720; 5 with --smoke)")
    p.add_argument("--coherence-workers", type=int, default=3,
                   help="worker processes of the coherence scenario's L1+L2 server (3)")
    p.add_argument("--coherence-readers", type=int, default=2,
                   help="coherence reader processes per app process (2)")
    p.add_argument("--coherence-edge-readers", type=int, default=None,
                   help="coherence reader processes for the edge (default: --coherence-readers); the edge "
                        "answers from memory, so its readers take most of the CPU: fewer of them leave more "
                        "of it to the app tiers' sample")
    p.add_argument("--coherence-articles", type=int, default=3, help="hot articles the coherence writer edits (3)")
    p.add_argument("--coherence-edit-interval", type=float, default=0.2,
                   help="seconds between the end of one coherence edit and the next (0.2)")
    p.add_argument("--faults", default=",".join(FAULTS),
                   help=f"rows of the faults scenario, run in this order whatever the list's: {', '.join(FAULTS)} (all)")
    p.add_argument("--hosts-baseline", type=float, default=300.0,
                   help="hosts scenario: seconds sampled before the first fault (300)")
    p.add_argument("--hosts-fault-seconds", type=float, default=10.0, help="hosts scenario: seconds each fault lasts (10)")
    p.add_argument("--hosts-recovery", type=float, default=10.0, help="hosts scenario: seconds after each repair (10)")
    p.add_argument("--host-faults", default=",".join(HOST_FAULTS),
                   help=f"hosts scenario: faults, in this order: {', '.join(HOST_FAULTS)} (all)")
    p.add_argument("--hosts-readers", type=int, default=3, help="hosts scenario: reader processes per app host (3)")
    p.add_argument("--hosts-edge-readers", type=int, default=2, help="hosts scenario: reader processes per edge (2)")
    p.add_argument("--hosts-articles", type=int, default=500,
                   help="hosts scenario: demo articles seeded in its private PostgreSQL (500; at most --articles)")
    p.add_argument("--hosts-replica-delay", type=float, default=0.5,
                   help="hosts scenario: the standby's apply delay in seconds (0.5)")
    p.add_argument("--l1-sizes", default="1000,10000,20000,50000",
                   help="l1sizes scenario: CACHE_L1_MAX_ENTRIES of each L1+L2 server (1000,10000,20000,50000)")
    p.add_argument("--name", default=None, help="scenario name in the results file name")
    p.add_argument("--smoke", action="store_true", help="2 s per measurement (1 s slices), 1 s warm-up, 5 freshness writes, 5 s of coherence sampling")
    opts = p.parse_args(argv)
    opts.argv_text = " ".join(argv)
    opts.scenarios = IN_ALL if opts.scenario == "all" else tuple(s.strip() for s in opts.scenario.split(","))
    opts.modes = tuple(m.strip() for m in opts.modes.split(","))
    opts.workloads = tuple(w.strip() for w in opts.workloads.split(","))
    opts.faults = tuple(f.strip() for f in opts.faults.split(","))
    opts.host_faults = tuple(f.strip() for f in opts.host_faults.split(",") if f.strip())
    try:
        opts.l1_sizes = tuple(int(s) for s in opts.l1_sizes.split(",") if s.strip())
    except ValueError:
        p.error("--l1-sizes: a comma list of entry counts")
    for name, allowed, given in (("scenario", SCENARIOS, opts.scenarios), ("mode", MODES, opts.modes),
                                 ("workload", WORKLOADS, opts.workloads), ("fault", FAULTS, opts.faults),
                                 ("host fault", HOST_FAULTS, opts.host_faults)):
        bad = [g for g in given if g not in allowed]
        if bad:
            p.error(f"unknown {name}: {', '.join(bad)}")
    if "floor" not in opts.modes:
        opts.modes = ("floor", *opts.modes)
    if opts.smoke:
        opts.duration, opts.warmup, opts.zipf_warmup = 2.0, 1.0, 2.0
        opts.slice = min(opts.slice, 1)
    if opts.slice < 0:
        p.error("--slice must be >= 0")
    if opts.coherence_duration is None:
        opts.coherence_duration = 5.0 if opts.smoke else 720.0
    if opts.fresh_iterations is None:
        opts.fresh_iterations = 5 if opts.smoke else 20
    opts.scenario_name = opts.name or ("bench" if opts.scenario == "all" else opts.scenario.replace(",", "+"))
    if opts.smoke:
        opts.scenario_name += "-smoke"
    return opts


def main(argv=None) -> int:
    return run(parse(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
