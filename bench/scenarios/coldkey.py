"""Scenario `coldkey`: a never-requested article hit by --cold-clients connections at once; source
loads counted over every worker involved (SPEC: one source load cluster-wide)."""

import time
from concurrent.futures import ThreadPoolExecutor

from bench import loadgen, webget
from bench.context import Context, log
from bench.loadgen import Workload
from bench.probes import Snapshot
from bench.stack import AppServer, Unavailable
from bench.writer import django_setup, new_cold_article

# App servers this scenario reads from ctx.servers (nocache: the queries of one render).
SHARED_SERVERS = frozenset({"nocache", "cache_page", "l2", "l1l2"})


def _cold_reason(server, mode: str, hot_id: int) -> str | None:
    if not isinstance(server, AppServer):
        return server
    prefix = "/bench/cp" if mode == "cache_page" else ""
    probe = webget.try_get(server.base_url, f"{prefix}/api/articles/{hot_id}/")
    if probe is None or probe.status != 200:
        return "n/a: article detail endpoint missing"
    if mode in ("l2", "l1l2") and "x-cache" not in probe.headers:
        return "n/a: newsite cache not active (no X-Cache header)"
    return None


def run(ctx: Context) -> None:
    """256 clients on one cold key at once: source loads counted over every worker involved.

    The last row splits the clients over the L2-only and the L1+L2 servers at once (4 processes
    sharing L2 and its leases): the cluster-wide count.
    """
    if isinstance(ctx.workloads.get("hot"), str):
        ctx.coldkey.append({"mode": "all", "status": ctx.workloads["hot"]})
        return
    django_setup(ctx)
    nocache = ctx.servers.get("nocache")
    per_render = None
    if isinstance(nocache, AppServer):
        pk = new_cold_article(f"{int(time.time() * 1000)}-probe")
        before = Snapshot(nocache.metrics_dir, ctx.redis_client)
        webget.get(nocache.base_url, f"/api/articles/{pk}/")
        per_render = Snapshot(nocache.metrics_dir, ctx.redis_client).delta(before)["db_queries"] or None
    # Servers of their own with threads, so that many requests really are in flight at once
    # (a sync worker handles one at a time, which would hide a stampede).
    opts = ctx.opts
    cold_servers = {}
    for mode in ("cache_page", "l2", "l1l2"):
        try:
            cold_servers[mode] = ctx.stack.start_app(mode, ctx.env, opts.cold_server, opts.workers, opts.cold_threads)
        except Unavailable as exc:
            cold_servers[mode] = f"n/a: {exc}"
    for label, modes in (("cache_page", ["cache_page"]), ("l2", ["l2"]), ("l1l2", ["l1l2"]),
                         ("cluster", ["l2", "l1l2"])):
        row = {"mode": label, "clients": opts.cold_clients, "queries_per_render": per_render}
        reasons = [r for r in (_cold_reason(cold_servers[m], m, ctx.data["hot_id"]) for m in modes) if r]
        if reasons:
            ctx.coldkey.append({**row, "status": reasons[0]})
            continue
        targets = [(cold_servers[m].base_url, "/bench/cp" if m == "cache_page" else "", cold_servers[m])
                   for m in modes]
        pk = new_cold_article(f"{int(time.time() * 1000)}-{label}")
        workload = Workload("cold", "fixed", path=f"/api/articles/{pk}/")
        befores = [Snapshot(t[2].metrics_dir, ctx.redis_client) for t in targets]
        share = ctx.opts.cold_clients // len(targets)
        with ThreadPoolExecutor(len(targets)) as pool:
            futures = [pool.submit(loadgen.run_wrk, ctx.wrk, t[0], workload, t[1], 2, share, timeout="10s")
                       for t in targets]
            runs = [f.result() for f in futures]
        time.sleep(0.3)
        deltas = [Snapshot(t[2].metrics_dir, ctx.redis_client).delta(b) for t, b in zip(targets, befores, strict=True)]
        queries = sum(d["db_queries"] for d in deltas)
        row.update(status="ok", requests=sum(r["requests"] for r in runs), non_2xx=sum(r["status"] for r in runs),
                   errors=sum(r["errors"] for r in runs), db_queries=queries,
                   loads_metric=sum(d["loads"] for d in deltas) if label != "cache_page" else None,
                   loads_from_db=(queries / per_render) if per_render else None,
                   p99_ms=max(r["p99"] for r in runs) / 1000, processes=len(targets) * ctx.opts.workers)
        ctx.coldkey.append(row)
        log(f"cold key {label}: loads {row['loads_metric']} (metric), {row['loads_from_db']} (from DB), "
            f"{row['requests']} requests")
    for server in cold_servers.values():
        if isinstance(server, AppServer):
            ctx.stack.stop_app(server)
    from articles.models import Article

    Article.objects.filter(slug__startswith="bench-cold-").delete()  # leave the seeded data as it was
