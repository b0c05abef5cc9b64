"""One benchmark run: stack up, the chosen scenarios in their fixed order, stack down, report.

The app servers of --modes, plus those the chosen scenarios read (their SHARED_SERVERS), are
started once for the whole run; a scenario that needs servers of its own starts and stops them.
"""

from bench import report, session
from bench.context import log
from bench.scenarios import SCENARIOS
from bench.stack import Unavailable
from bench.stats import best_results


def run(opts) -> int:
    """Run opts.scenarios and write the results file. Exit status: 0, 2 (cannot run), 130 (^C)."""
    standalone = [SCENARIOS[name] for name in opts.scenarios if getattr(SCENARIOS[name], "STANDALONE", False)]
    if standalone:
        if len(opts.scenarios) > 1:
            log(f"cannot run: {', '.join(m.__name__.rsplit('.', 1)[-1] for m in standalone)} runs alone")
            return 2
        return standalone[0].run_standalone(opts)
    ctx = None
    try:
        ctx = session.setup(opts)
        session.build_workloads(ctx)
        chosen = [module for name, module in SCENARIOS.items() if name in opts.scenarios]
        shared = [module.SHARED_SERVERS for module in chosen if module.SHARED_SERVERS is not None]
        if shared:
            session.start_servers(ctx, set(opts.modes).union(*shared))
        for module in chosen:
            module.run(ctx)
    except KeyboardInterrupt:
        log("interrupted: stopping the stack")
        if ctx:
            ctx.stack.close()
        return 130
    except Unavailable as exc:
        log(f"cannot run: {exc}")
        if ctx:
            ctx.stack.close()
        return 2
    finally:
        if ctx:
            session.finish(ctx)
    paths = report.write(ctx, best_results(ctx.results))
    for p in paths:
        log(f"wrote {p}")
    return 0
