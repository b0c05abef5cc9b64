"""Scenario `freshness`: a writer saves an article; probes read every tier (each L1 worker, L2,
Varnish) until the new version shows, timed from the COMMIT."""

import functools
import threading
import time

from bench import webget
from bench.context import Context, log
from bench.stack import AppServer, Unavailable
from bench.stats import percentile
from bench.writer import django_setup

SHARED_SERVERS = frozenset({"l2", "l1l2", "varnish"})


def run(ctx: Context) -> None:
    """A writer saves an article; probes read every tier until the new title shows."""
    tiers = {}
    l1l2, l2 = ctx.servers.get("l1l2"), ctx.servers.get("l2")
    if isinstance(ctx.workloads.get("hot"), str):
        ctx.fresh = {"status": ctx.workloads["hot"]}
        return
    for name, server in (("L1 (every worker)", l1l2), ("L2", l2)):
        if not isinstance(server, AppServer):
            tiers[name] = server or "n/a: server not started"
            continue
        reply = webget.try_get(server.base_url, f"/api/articles/{ctx.data['fresh_id']}/")
        if reply is None or reply.status != 200:
            tiers[name] = "n/a: article detail endpoint missing"
        elif "x-cache" not in reply.headers:
            tiers[name] = "n/a: newsite cache not active (no X-Cache header)"
        else:
            tiers[name] = server
    tiers["edge (Varnish)"] = (f"http://127.0.0.1:{ctx.varnish[0]}" if isinstance(ctx.varnish, tuple)
                               else (ctx.varnish or "n/a: Varnish not started"))
    if isinstance(tiers["L1 (every worker)"], str) and isinstance(tiers["L2"], str):
        ctx.fresh = {"status": tiers["L1 (every worker)"], "tiers": {k: v for k, v in tiers.items() if isinstance(v, str)}}
        return
    django_setup(ctx)
    celery_note = None
    if isinstance(ctx.varnish, tuple):
        try:
            ctx.stack.start_celery(ctx.env)
        except Unavailable as exc:
            celery_note = str(exc)
    from django.db import transaction

    from articles.models import Article

    pk = ctx.data["fresh_id"]
    # One untimed write first: connections, imports and the broker channel get set up.
    warm = Article.objects.get(pk=pk)
    warm.title = f"bench-fresh-warm-{int(time.time())}"
    warm.save()
    path = f"/api/articles/{pk}/"
    bases = {name: (t.base_url if isinstance(t, AppServer) else t) for name, t in tiers.items()
             if isinstance(t, AppServer) or t.startswith("http")}
    samples = {name: [] for name in bases}
    samples["all tiers"] = []
    deadline_s = 5.0
    save_ms = []
    for i in range(ctx.opts.fresh_iterations):
        marker = f"bench-fresh-{int(time.time())}-{i}"
        # Warm every tier with the current version (each worker's L1 included).
        for _ in range(4 * ctx.opts.workers):
            for base in bases.values():
                webget.try_get(base, path)
        seen = {}
        stop = threading.Event()
        t0_box = {}
        threads = []
        for name, base in bases.items():
            workers = ctx.opts.workers if name.startswith("L1") else 1
            th = threading.Thread(target=_probe_until, args=(base, path, marker, workers, name, seen, stop, t0_box),
                                  daemon=True)
            threads.append(th)
            th.start()
        time.sleep(0.05)
        art = Article.objects.get(pk=pk)
        art.title = marker
        committed = {}
        t0_box["t0"] = time.perf_counter()
        with transaction.atomic():
            # Registered before the save's own hooks, so it runs first: the instant of COMMIT.
            transaction.on_commit(functools.partial(_mark_commit, committed))
            art.save()
        save_ms.append((time.perf_counter() - t0_box["t0"]) * 1000)
        for th in threads:
            th.join(deadline_s)
        stop.set()
        worst = 0.0
        for name in samples:
            if name == "all tiers":
                continue
            at = seen.get(name)
            value = (at - committed["t"]) * 1000 if at is not None else deadline_s * 1000
            samples[name].append(value)
            worst = max(worst, value)
        samples["all tiers"].append(worst)
    ctx.fresh = {"status": "ok", "iterations": ctx.opts.fresh_iterations, "celery": celery_note, "save_ms": save_ms,
                 "tiers": {k: v for k, v in tiers.items() if isinstance(v, str) and not v.startswith("http")},
                 "samples": samples}
    for name, values in samples.items():
        log(f"commit->fresh {name}: p50 {percentile(values, 50):.1f} ms p99 {percentile(values, 99):.1f} ms")


def _mark_commit(box: dict) -> None:
    box.setdefault("t", time.perf_counter())


def _probe_until(base, path, marker, workers, name, seen, stop, t0_box):
    needle = marker.encode()
    fresh_workers = set()
    while not stop.is_set():
        reply = webget.try_get(base, path, timeout=2)
        if reply is not None and needle in reply.body and "t0" in t0_box:
            fresh_workers.add(reply.headers.get("x-bench-worker", "?"))
            if len(fresh_workers) >= workers:
                seen[name] = time.perf_counter()
                return
        time.sleep(0.001)
