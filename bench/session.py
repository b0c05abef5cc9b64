"""Setting a run up and tearing it down: services, database and demo data, the shared app
servers and Varnish, the workloads; then stopping everything and cross-checking the counts."""

import http.client
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

from bench import db, loadgen
from bench.context import MODES, WORKLOADS, Context, log
from bench.loadgen import Workload
from bench.probes import db_queries, prom_samples
from bench.stack import ROOT, TASKSET, AppServer, Stack, Unavailable


def build_env(opts, redis_url: str, celery_url: str) -> dict:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": opts.database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": celery_url,
        "CACHE_KEY_PREFIX": opts.key_prefix,
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    })
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def ensure_services() -> None:
    """PostgreSQL, Redis and Varnish up (deploy/scripts/ensure-services.sh, idempotent)."""
    script = ROOT / "deploy" / "scripts" / "ensure-services.sh"
    if script.exists():
        result = subprocess.run(["bash", str(script)], cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            log(f"ensure-services.sh failed (going on): {result.stderr.strip()[-300:]}")


def setup(opts) -> Context:
    if TASKSET:
        os.sched_setaffinity(0, {1})  # the harness (probes, writer) sits with the load generator
    ensure_services()
    stack = Stack()
    wrk = loadgen.ensure_wrk(log)
    if opts.redis == "private":
        port = stack.start_redis()
        redis_url, celery_url = f"redis://127.0.0.1:{port}/6", f"redis://127.0.0.1:{port}/7"
        log(f"private redis-server on :{port} (db 6 cache, db 7 Celery)")
    else:
        redis_url, celery_url = opts.redis_url, opts.celery_url
    env = build_env(opts, redis_url, celery_url)
    ctx = Context(opts, stack, env, wrk)
    ctx.redis_client = redis.Redis.from_url(redis_url)
    ctx.redis_client.flushdb()  # our own db index only: every run starts cold
    log(f"taskset pinning: {'server core 0, load core 1' if TASKSET else 'unavailable'}")

    created = db.ensure_database(opts.database_url)
    log(f"database {db.db_name(opts.database_url)} {'created' if created else 'exists'}; migrating")
    db.migrate(env)
    try:
        ctx.data = db.ensure_seeded(opts.database_url, env, opts.articles, log)
    except Unavailable as exc:
        ctx.data = {**db.counts(opts.database_url), "reason": str(exc)}
        log(f"no demo data: {exc}")
    ctx.data["xact_start"] = db.xact_total(opts.database_url)
    return ctx


def bare_response(ctx: Context, path: str) -> Path | None:
    """The l1l2 server's answer to `path` once it is an L1 hit (status, headers but those the
    WSGI server writes itself, body), as bench/bare_wsgi.py's BARE_WSGI_RESPONSE file."""
    server = ctx.servers.get("l1l2")
    if not isinstance(server, AppServer):
        return None
    for _ in range(8):  # both workers' L1
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in ("date", "server", "connection", "transfer-encoding", "keep-alive")]
        finally:
            conn.close()
    if resp.status != 200 or dict((k.lower(), v) for k, v in headers).get("x-cache") != "HIT-L1":
        return None
    out = ctx.stack.workdir / "bare-response.json"
    out.write_text(json.dumps({"status": f"{resp.status} {resp.reason}", "headers": headers,
                               "body": body.decode()}))
    return out


def start_servers(ctx: Context, modes) -> None:
    app_modes = {"l1l2" if m == "varnish" else m for m in modes}
    for mode in MODES:
        if mode not in app_modes or mode in ("varnish", "bare"):
            continue
        try:
            ctx.servers[mode] = ctx.stack.start_app(mode, ctx.env, ctx.opts.server, ctx.opts.workers,
                                                    ctx.opts.threads)
            log(f"{ctx.opts.server} x{ctx.opts.workers} for {mode} on :{ctx.servers[mode].port}")
        except Unavailable as exc:
            ctx.servers[mode] = f"n/a: {exc}"
            log(ctx.servers[mode])
    if "bare" in app_modes:
        hot = ctx.workloads.get("hot")
        replay = bare_response(ctx, hot.path) if isinstance(hot, Workload) else None
        env = {**ctx.env, "BARE_WSGI_RESPONSE": str(replay)} if replay else ctx.env
        try:
            ctx.servers["bare"] = ctx.stack.start_app("bare", env, ctx.opts.server, ctx.opts.workers,
                                                      ctx.opts.threads, app="bench.bare_wsgi:application")
            ctx.data["bare_replays"] = "the hot article's L1 hit" if replay else "the floor's body"
            log(f"{ctx.opts.server} x{ctx.opts.workers} for bare on :{ctx.servers['bare'].port} "
                f"({ctx.data['bare_replays']})")
        except Unavailable as exc:
            ctx.servers["bare"] = f"n/a: {exc}"
            log(ctx.servers["bare"])
    if "varnish" in modes:
        backend = ctx.servers.get("l1l2")
        if not isinstance(backend, AppServer):
            ctx.varnish = "n/a: no l1l2 server to put Varnish in front of"
        else:
            try:
                ctx.varnish = ctx.stack.start_varnish(backend.port)
                log(f"varnishd on :{ctx.varnish[0]} in front of :{backend.port}")
            except Unavailable as exc:
                ctx.varnish = f"n/a: {exc}"
                log(ctx.varnish)
        if isinstance(ctx.varnish, tuple):
            # CDN purges (outbox -> Celery -> Varnish) reach this varnishd.
            ctx.env["VARNISH_PURGE_URL"] = f"http://127.0.0.1:{ctx.varnish[0]}/"


def build_workloads(ctx: Context) -> None:
    ids = []
    if not ctx.data.get("reason"):
        import psycopg

        with psycopg.connect(ctx.opts.database_url, autocommit=True) as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM articles_article WHERE status = 'published' ORDER BY id")]
    if not ids:
        reason = f"n/a: no published articles ({ctx.data.get('reason', 'empty database')})"
        ctx.workloads = {name: reason for name in WORKLOADS}
        return
    ranked = loadgen.write_ranked_ids(ids, ctx.stack.workdir / "zipf-ids.txt")
    ranked_ids = [int(x) for x in ranked.read_text().split()]
    exponent = loadgen.zipf_exponent(len(ranked_ids))
    ctx.data.update(published=len(ids), zipf_exponent=exponent, hot_id=ranked_ids[0],
                    fresh_id=ranked_ids[1], cold_candidates=ranked_ids[-50:])
    ctx.workloads = {
        "hot": Workload("hot", "fixed", path=f"/api/articles/{ranked_ids[0]}/"),
        "zipf": Workload("zipf", "zipf", ids_file=ranked, exponent=exponent),
        "feed": Workload("feed", "feed", pages=5),
    }


def finish(ctx: Context) -> None:
    """Stop servers, then cross-check counted queries against pg_stat_database."""
    total_counted = 0.0
    # The harness's own cache client (writer scenarios) would log the private Redis going away.
    logging.getLogger("caching").setLevel(logging.CRITICAL)
    ctx.stack.close()
    for d in ctx.stack.metric_dirs:
        total_counted += db_queries(prom_samples(d))
    time.sleep(1.5)
    try:
        ctx.data["xact_end"] = db.xact_total(ctx.opts.database_url)
        ctx.data["queries_counted"] = total_counted
    except Unavailable:
        pass
