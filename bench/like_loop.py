"""Issue 28.1 and 28.2's figures: what one reader's like/unlike loop costs every tier, and how
many views one client's flood of view POSTs counts.

    DATABASE_URL=... REDIS_URL=... CACHE_KEY_PREFIX=... CELERY_TASK_ALWAYS_EAGER=true \\
        .venv/bin/python -m bench.like_loop [--toggles 100] [--rate 0] [--readers 1] [--views 100]

In one process (the writer, Django's test Client, no HTTP server): a fresh category, author and
30 published articles; `--readers` other processes, each with its own L1 subscribed to the
invalidation broadcast (so each write waits for their acknowledgements, as under gunicorn),
read the home feed (JSON and page), the category feed, the hot article's detail and page in a
loop, every ~20 ms, counting what answered (X-Cache). The writer warms every list holding the
hot article, then one logged-in reader toggles its like (POST, DELETE, ...) `--toggles` times,
as fast as it can (`--rate 0`) or at `--rate` toggles a second. Counted during the loop:

- app-tier invalidations: the tag sets the write side asked for (caching.invalidation's
  on_invalidate hook), the tags L2 invalidated (<namespace>_cache_invalidations_total{kind=tag}),
  and the time the writer spent waiting for the other L1s' acknowledgements;
- CDN: outbox rows written, and purge requests sent to the (dummy) backend: a thread drains the
  outbox every 50 ms as the Celery worker does at each row's due time (run with
  CELERY_TASK_ALWAYS_EAGER=true, whose drains at commit ignore the countdown of a row due later);
  after the loop the script waits out CDN_COUNTS_PURGE_WINDOW and drains what is left;
- reads: per path, the readers' answers by tier (a MISS is a refill from the database), each
  watched list's X-Cache in the writer right after the loop (a loop longer than L1_TTL, 30 s,
  also shows expiries there), and the lists whose Surrogate-Key meets a tag the loop invalidated
  in the app tiers or wrote to the outbox (the direct answer: was the list emptied).

`--views N`: one client (a non-exempt address) POSTs /api/articles/{id}/views/ N times in a row;
the counters are flushed and the article's view_count read back.

Nothing is asserted: figures go to stdout as JSON (bench/results/2026-12-07-like-loop.md). The
script only uses what every commit since issue 16 has (models, services, the outbox, the dummy
backend, the metrics), so the same file measures the code before and after issue 28.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

READ_EVERY = 0.02
DRAIN_EVERY = 0.05


def _setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")
    import django

    django.setup()


def reader_main() -> None:
    """A reader process: `paths` (JSON list) on the first stdin line, then reads them in turn
    until a second line arrives; prints {path: {x_cache: n}}."""
    _setup()
    import select

    from django.test import Client

    paths = json.loads(sys.stdin.readline())
    client = Client()
    seen: dict[str, Counter] = defaultdict(Counter)
    for path in paths:
        client.get(path)  # warm, not counted
    print("ready", flush=True)
    i = 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        path = paths[i % len(paths)]
        i += 1
        response = client.get(path)
        seen[path][response.get("X-Cache", str(response.status_code))] += 1
        time.sleep(READ_EVERY)
    sys.stdin.readline()
    print(json.dumps({path: dict(c) for path, c in seen.items()}), flush=True)


def _ack_wait_timer():
    """Wrap the invalidator's wait for the other L1s' acknowledgements; returns the list of waits."""
    waits: list[float] = []
    for module_name, class_name in (("caching.invalidator", "AppTierInvalidator"), ("caching.fetcher", "FetchFace")):
        try:
            module = __import__(module_name, fromlist=[class_name])
            cls = getattr(module, class_name)
        except (ImportError, AttributeError):
            continue
        if hasattr(cls, "_wait_for_acks"):
            original = cls._wait_for_acks

            def timed(self, seq, receivers, _original=original):
                start = time.perf_counter()
                try:
                    return _original(self, seq, receivers)
                finally:
                    waits.append(time.perf_counter() - start)

            cls._wait_for_acks = timed
            break
    return waits


def _metric(counter, *labels) -> float:
    return counter.labels(*labels)._value.get()


def writer_main(args) -> dict:
    _setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from articles import counters
    from articles.models import Article, Author, Category
    from caching import metrics
    from caching.invalidation import on_invalidate
    from cdn.backends import dummy
    from cdn.models import PurgeOutbox
    from cdn.outbox import drain_outbox

    run = f"{int(time.time())}-{os.getpid()}"
    user_model = get_user_model()
    category = Category.objects.create(name=f"Loop {run}", slug=f"loop-{run}")
    author = Author.objects.create(user=user_model.objects.create_user(f"author-{run}"), name="Loop Author")
    now = timezone.now()
    articles = [
        Article.objects.create(
            author=author, category=category, title=f"Loop story {n} {run}", slug=f"loop-story-{n}-{run}",
            excerpt="x", body="loop body", status=Article.Status.PUBLISHED,
            published_at=now - timezone.timedelta(minutes=n + 1),
        )
        for n in range(30)
    ]
    hot = articles[0]
    reader = user_model.objects.create_user(f"reader-{run}")
    drain_outbox()

    lists = {
        "home JSON": "/api/articles/",
        "home page": "/",
        "home RSS": "/feed/",
        "category JSON": f"/api/categories/{category.slug}/articles/",
        "category page": f"/category/{category.slug}/",
        "author feed": f"/api/authors/{author.pk}/articles/",
        "search": f"/api/search/?q=loop+story+{run.split('-')[0]}",
        "sitemap": "/sitemap-articles.xml",
    }
    shows_counts = {"detail JSON": f"/api/articles/{hot.pk}/", "article page": f"/articles/{hot.slug}/"}
    watched = {**lists, **shows_counts}
    reader_paths = [lists["home JSON"], lists["home page"], lists["category JSON"], *shows_counts.values()]
    procs = []
    for _ in range(args.readers):
        proc = subprocess.Popen([sys.executable, "-m", "bench.like_loop", "--reader"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        proc.stdin.write(json.dumps(reader_paths) + "\n")
        proc.stdin.flush()
        procs.append(proc)
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"

    anonymous = Client()
    for path in watched.values():
        anonymous.get(path)
        anonymous.get(path)
    warm = {name: anonymous.get(path).get("X-Cache") for name, path in watched.items()}
    list_tags = {name: set(anonymous.get(path).get("Surrogate-Key", "").split()) for name, path in lists.items()}

    asked: list[frozenset[str]] = []
    on_invalidate.append(asked.append)
    waits = _ack_wait_timer()
    tags_before = _metric(metrics.CACHE_INVALIDATIONS, "tag")
    first_row = (PurgeOutbox.objects.order_by("-pk").values_list("pk", flat=True).first() or 0)
    purged_before = len(dummy.PURGED)
    drained = threading.Event()

    def drainer():  # the worker's drain at each row's due time (an eager Celery ignores countdowns)
        from django.db import connection

        try:
            while not drained.wait(DRAIN_EVERY):
                drain_outbox()
        finally:
            connection.close()

    drain_thread = threading.Thread(target=drainer, daemon=True)
    drain_thread.start()
    client = Client()
    client.force_login(reader)
    path = f"/api/articles/{hot.pk}/like/"
    toggle_ms = []
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for n in range(args.toggles):
        if args.rate:
            time.sleep(max(0.0, start + n / args.rate - time.perf_counter()))
        t = time.perf_counter()
        response = client.post(path) if n % 2 == 0 else client.delete(path)
        toggle_ms.append((time.perf_counter() - t) * 1000)
        assert response.status_code in (200, 201, 204), response.status_code
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    on_invalidate.remove(asked.append)
    after = {name: anonymous.get(p).get("X-Cache") for name, p in watched.items()}
    read = {}
    for proc in procs:
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        for p, seen in json.loads(proc.stdout.readline()).items():
            read.setdefault(p, Counter()).update(seen)
        proc.wait(timeout=30)
    tags_l2 = _metric(metrics.CACHE_INVALIDATIONS, "tag") - tags_before

    rows = list(PurgeOutbox.objects.filter(pk__gt=first_row).order_by("pk"))
    window = max([0.0, *getattr(settings, "CDN_OUTBOX", {}).get("COALESCE", {}).values()])
    time.sleep(window + 0.3)
    drained.set()
    drain_thread.join(30)
    drain_outbox()
    sent = [(kind, items) for _, kind, items in dummy.PURGED[purged_before:]]
    asked_tags = Counter(tag.split(":")[0] + (":{id}" if ":" in tag else "") for tags in asked for tag in tags)

    result = {
        "toggles": args.toggles,
        "rate": args.rate or "as fast as it can",
        "readers": args.readers,
        "loop seconds": round(elapsed, 2),
        "toggles per second": round(args.toggles / elapsed, 1),
        "toggle ms p50/p95": [round(statistics.median(toggle_ms), 1),
                              round(sorted(toggle_ms)[int(0.95 * (len(toggle_ms) - 1))], 1)],
        "writer CPU ms per toggle": round(((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime))
                                          * 1000 / args.toggles, 2),
        "app tiers: invalidations asked (tag sets)": len(asked),
        "app tiers: tags asked, by family": dict(asked_tags),
        "app tiers: tags invalidated in L2": int(tags_l2),
        "app tiers: L1 acknowledgement waits": len(waits),
        "app tiers: L1 acknowledgement wait ms total/p50/max": [
            round(sum(waits) * 1000, 1), round(statistics.median(waits) * 1000, 2) if waits else 0,
            round(max(waits) * 1000, 2) if waits else 0],
        "lists whose tags the loop invalidated": sorted(
            name for name, tags in list_tags.items() if tags & set().union(*asked, *(r.tags for r in rows))),
        "CDN: outbox rows written": len(rows),
        "CDN: purge requests sent": len(sent),
        "CDN: tags purged": sorted({tag for _, items in sent for tag in items}),
        "warm before the loop (X-Cache)": warm,
        "right after the loop (X-Cache)": after,
        "readers' answers during the loop": {
            next(name for name, p in watched.items() if p == path_): dict(seen) for path_, seen in read.items()},
    }
    if args.views:
        counters.flush_view_counts()
        before_count = Article.objects.get(pk=hot.pk).view_count
        flood = Client(REMOTE_ADDR=f"203.0.113.{os.getpid() % 250 + 1}")  # a fresh client per run
        statuses = Counter(flood.post(f"/api/articles/{hot.pk}/views/").status_code for _ in range(args.views))
        counters.flush_view_counts()
        result["views: POSTs"] = args.views
        result["views: statuses"] = dict(statuses)
        result["views: counted"] = Article.objects.get(pk=hot.pk).view_count - before_count
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--toggles", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.0, help="toggles a second (0: as fast as it can)")
    parser.add_argument("--readers", type=int, default=1)
    parser.add_argument("--views", type=int, default=0, help="then one client's flood of N view POSTs")
    args = parser.parse_args()
    if args.reader:
        reader_main()
    else:
        print(json.dumps(writer_main(args), indent=1))


if __name__ == "__main__":
    main()
