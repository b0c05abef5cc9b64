"""Cache warming (run on deploy): fills the tiers through the same code path as real requests,
so the entries are byte-identical to what a reader's request would have stored.

What is warmed: home feed pages 1-5 (JSON and the HTML front page), the category list and page 1
of every category feed (JSON and HTML), breaking news, trending, and the N most read articles
(settings.WARM_CACHE_TOP_ARTICLES, JSON detail and HTML page).

With `all_articles` (`manage.py warm_cache --all`, and on deploy) also the JSON detail of every
published article, the long tail the Zipf readers hit (issue 17.3): not page by page through
the test client but in batches of WARM_CACHE_BATCH_SIZE through `caching.fetch_many` - one
Redis round trip to see which are already fresh, one query for the rest, one pipeline of fills.
Each entry is built by the view's own response builder (api.article_detail_response) and the
middleware's entry_from_response, under the middleware's key: the same bytes, headers and tags
as a reader's request would store. The fills obey the stale-set rule (a batch whose article was
invalidated after the batch started is refused), so a warm racing an editor never stores the
old version. The HTML page of the long tail is not warmed (docs/caching.md, "Bulk fetch and warming").

With `edge_url` (`warm_cache --edge URL`, settings.WARM_CACHE_EDGE_URL) the same pages are then
requested through the edge (Varnish or a CDN) at that base URL, WARM_CACHE_EDGE_CONCURRENCY at a
time (warm_edge): the app answers them from the tiers just filled and the edge keeps them, so the
long tail's first readers hit the edge too (issue 17.3, 17.6). The URL is the one readers use:
its host is part of the edge's cache key.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from django.conf import settings
from django.test import Client

import caching
from caching import L2Unavailable, conf
from caching.app_data import Lock, command
from caching.http import TAGS, entry_from_response, policy_of
from caching.keys import response_key
from newsite import throttle

from . import api, keys, selectors
from .models import Article, Category

logger = logging.getLogger("newsite.tasks")

HOME_PAGES = 5
# Longer than the Celery task's time_limit (articles/tasks.py), so a run never outlives its lock;
# a run killed with its lock held only delays the next one by this much.
WARM_LOCK_SECONDS = 660
DETAIL_ROUTE = "api-article"  # articles/urls.py: the route whose responses the long tail reads


class WarmCacheLocked(Exception):
    """Another warm_cache run holds the lock (keys.warm_cache_lock_key): this one did nothing."""


def warm_paths() -> list[str]:
    top = getattr(settings, "WARM_CACHE_TOP_ARTICLES", 200)
    paths = [f"/api/articles/?page={page}" for page in range(1, HOME_PAGES + 1)]
    paths += ["/", "/api/categories/", "/api/breaking-news/", "/api/articles/trending/"]
    for slug in Category.objects.order_by("name").values_list("slug", flat=True):
        paths += [f"/api/categories/{slug}/articles/?page=1", f"/category/{slug}/"]
    most_read = (
        Article.objects.visible().order_by("-view_count", "-id").values_list("id", "slug")[:top]
    )
    for article_id, slug in most_read:
        paths += [f"/api/articles/{article_id}/", f"/articles/{slug}/"]
    return paths


def _client() -> Client:
    hosts = [h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")]
    # A failing page is reported in the counts, not raised: one bad path must not stop the run.
    # Its misses are the warm's purpose: never charged to a per-client budget (newsite/throttle.py).
    return Client(SERVER_NAME=hosts[0] if hosts else "localhost", raise_request_exception=False,
                  **{throttle.INTERNAL: True})


def warm_cache(*, progress: Callable[[Iterable[str]], Iterable[str]] = lambda paths: paths,
               all_articles: bool = False, refresh_within: float = 0.0, batches: Callable | None = None,
               edge_url: str | None = None) -> dict:
    """Request every warm path once and, with `all_articles`, bulk-fill the detail of every
    published article (warm_articles; `batches` wraps its batches as `progress` wraps the
    paths), under a Redis lock (the view-count flush's kind). Returns a report: counts by
    X-Cache and by status (and "articles", warm_articles' report; `refresh_within` is its). Raises WarmCacheLocked at
    once when another run holds the lock. Redis unreachable: runs unlocked (it then only fills
    this process's L1) and skips the articles (there is nowhere to put them). `edge_url`
    (default settings.WARM_CACHE_EDGE_URL; "" for none): then every warmed page through the edge
    (warm_edge; its report under "edge")."""
    if edge_url is None:
        edge_url = getattr(settings, "WARM_CACHE_EDGE_URL", "")
    lock = Lock(keys.warm_cache_lock_key(), timeout=WARM_LOCK_SECONDS)
    try:
        acquired = lock.acquire()
    except L2Unavailable as exc:
        logger.warning("warm_cache: Redis unreachable (%s), running without the lock", exc)
        return _warm(progress, all_articles=False, refresh_within=0.0, batches=batches, edge_url=edge_url)
    if not acquired:
        raise WarmCacheLocked("another warm_cache run holds the lock")
    try:
        return _warm(progress, all_articles=all_articles, refresh_within=refresh_within, batches=batches,
                     edge_url=edge_url)
    finally:
        try:
            released = lock.release()
        except L2Unavailable as exc:
            logger.warning("warm_cache: lock not released (%s); it expires in %d s", exc, WARM_LOCK_SECONDS)
        else:
            if not released:
                logger.warning("warm_cache: the run outlived its %d s lock", WARM_LOCK_SECONDS)


def _warm(progress, *, all_articles: bool, refresh_within: float, batches, edge_url: str) -> dict:
    started = time.time()
    client = _client()
    report = {"paths": 0, "by_source": {}, "by_status": {}}
    paths = warm_paths()
    for path in progress(paths):
        # secure=: behind TLS (SECURE_SSL_REDIRECT) a plain request would only get a redirect.
        response = client.get(path, secure=getattr(settings, "SECURE_SSL_REDIRECT", False))
        source = response.get("X-Cache", "uncached")
        report["paths"] += 1
        report["by_source"][source] = report["by_source"].get(source, 0) + 1
        report["by_status"][str(response.status_code)] = report["by_status"].get(str(response.status_code), 0) + 1
    if all_articles:
        report["articles"] = warm_articles(refresh_within=refresh_within,
                                           batches=batches or (lambda chunks, total: chunks))
    if edge_url:
        if all_articles:
            paths += [f"/api/articles/{i}/" for i in selectors.published_article_ids()]
        report["edge"] = warm_edge(edge_url, list(dict.fromkeys(paths)))
    report["seconds"] = round(time.time() - started, 3)
    report["finished_at"] = time.time()
    _record(report)
    return report


# --- through the edge -------------------------------------------------------------------------


def check_edge_url(url: str) -> str:
    """The edge's base URL without a trailing slash; ValueError unless http(s)://host[:port][/]."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"not an edge base URL (http[s]://host[:port]): {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def warm_edge(edge_url: str, paths: list[str], *, concurrency: int | None = None) -> dict:
    """GET every path through the edge at `edge_url`, `concurrency` (settings.
    WARM_CACHE_EDGE_CONCURRENCY) at a time, in order (the most read first). Returns {"requests",
    "by_status", "by_edge" (the edge's X-Cache-Edge: HIT, MISS; "none" without it), "errors"
    (no answer), "seconds"}. A failing path is counted, never raised."""
    import requests

    base = check_edge_url(edge_url)
    workers = concurrency or getattr(settings, "WARM_CACHE_EDGE_CONCURRENCY", 8)
    local = threading.local()
    started = time.time()

    def get(path):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        try:
            response = session.get(base + path, timeout=30)
            response.close()
            return str(response.status_code), response.headers.get("X-Cache-Edge", "none")
        except requests.RequestException:
            local.session = None
            return None, None

    report = {"url": base, "requests": len(paths), "by_status": {}, "by_edge": {}, "errors": 0}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for status, edge in pool.map(get, paths):
            if status is None:
                report["errors"] += 1
                continue
            report["by_status"][status] = report["by_status"].get(status, 0) + 1
            report["by_edge"][edge] = report["by_edge"].get(edge, 0) + 1
    report["seconds"] = round(time.time() - started, 3)
    return report


# --- the long tail: every article's detail, in bulk ---------------------------------------------


def detail_key(article_id: int) -> str:
    """The response middleware's key of /api/articles/<id>/ (route name, URL kwargs, no params)."""
    return response_key(DETAIL_ROUTE, {"article_id": article_id}, {})


def _load_details(missing: dict) -> dict:
    """fetch_many's bulk loader: {key: article_id} -> {key: ResponseEntry}, one query."""
    policy = policy_of(api.ArticleDetailView)
    details = selectors.article_details(article_ids=missing.values())
    return {
        key: entry_from_response(api.article_detail_response(details[article_id]), policy)
        for key, article_id in missing.items()
        if article_id in details
    }


def warm_articles(*, batch_size: int | None = None, refresh_within: float = 0.0,
                  batches: Callable[[list[list[int]], int], Iterable[list[int]]] = lambda chunks, total: chunks) -> dict:
    """Fill L2 with the JSON detail of every published article, most read first, in batches of
    `batch_size` (settings.WARM_CACHE_BATCH_SIZE): per batch one MGET pipeline, one query for
    the ids not already fresh (nor, with `refresh_within` seconds, that close to their soft
    expiry: a periodic run keeps the tail from expiring), one pipeline of fills. This process's
    L1 is left alone. Returns
    {"articles", "batches", "by_source" (HIT-L2: already fresh, MISS: loaded), "refused" (an
    edit overtook the batch: left to the next reader), "gone" (unpublished meanwhile),
    "seconds"}. `batches(chunks, total)` wraps the batches (a progress bar). One batch at a
    time: 2 or 3 in threads measured no faster on the 2-core machine (docs/caching.md)."""
    started = time.time()
    ids = selectors.bulk_warm_article_ids()
    size = batch_size or getattr(settings, "WARM_CACHE_BATCH_SIZE", 500)
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    report = {"articles": len(ids), "batches": len(chunks), "by_source": {}, "refused": 0, "gone": 0}
    if not conf.get().enabled:
        report["skipped"] = "cache disabled"
        return report
    for chunk in batches(chunks, len(ids)):
        counts = _warm_batch(chunk, refresh_within)
        for source, n in counts["by_source"].items():
            report["by_source"][source] = report["by_source"].get(source, 0) + n
        report["refused"] += counts["refused"]
        report["gone"] += counts["gone"]
    report["seconds"] = round(time.time() - started, 3)
    return report


def _warm_batch(chunk: list[int], refresh_within: float) -> dict:
    """One batch through caching.fetch_many; returns its counts (not the entries)."""
    policy = policy_of(api.ArticleDetailView)

    def tags_for(key, entry):
        if entry is not None:
            return entry[TAGS]
        return policy.negative_tags({"article_id": int(key.rpartition("=")[2])})

    fetched = caching.fetch_many({detail_key(i): i for i in chunk}, _load_details, kind=policy.kind,
                                 tags_for=tags_for, use_l1=False, refresh_within=refresh_within)
    counts = {"by_source": {}, "refused": 0, "gone": 0}
    for result in fetched.values():
        counts["by_source"][result.source] = counts["by_source"].get(result.source, 0) + 1
        counts["refused"] += result.superseded
        counts["gone"] += result.value is None
    return counts


def _record(report: dict) -> None:
    try:
        command("set", keys.warm_cache_status_key(), json.dumps(report))
    except L2Unavailable:
        pass  # the report is also returned and logged by the caller


def last_run() -> dict | None:
    """The report of the last warm_cache run, or None (never run, or Redis unreachable)."""
    try:
        raw = command("get", keys.warm_cache_status_key())
    except L2Unavailable:
        return None
    return json.loads(raw) if raw else None
