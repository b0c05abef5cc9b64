"""Cache warming (run on deploy): fills the tiers through the same code path as real requests,
so the entries are byte-identical to what a reader's request would have stored.

What is warmed: home feed pages 1-5 (JSON and the HTML front page), the category list and page 1
of every category feed (JSON and HTML), breaking news, trending, and the N most read articles
(settings.WARM_CACHE_TOP_ARTICLES, JSON detail and HTML page).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable

import redis
from django.conf import settings
from django.test import Client

from caching import engine, keys
from caching.l2 import L2Unavailable

from .models import Article, Category

logger = logging.getLogger("newsite.tasks")

HOME_PAGES = 5
# Longer than the Celery task's time_limit (articles/tasks.py), so a run never outlives its lock;
# a run killed with its lock held only delays the next one by this much.
WARM_LOCK_SECONDS = 660


class WarmCacheLocked(Exception):
    """Another warm_cache run holds the lock (keys.warm_cache_lock_key): this one did nothing."""


def warm_paths() -> list[str]:
    top = getattr(settings, "WARM_CACHE_TOP_ARTICLES", 200)
    paths = [f"/api/articles/?page={page}" for page in range(1, HOME_PAGES + 1)]
    paths += ["/", "/api/categories/", "/api/breaking-news/", "/api/articles/trending/"]
    for slug in Category.objects.order_by("name").values_list("slug", flat=True):
        paths += [f"/api/categories/{slug}/articles/?page=1", f"/category/{slug}/"]
    most_read = (
        Article.objects.filter(status=Article.Status.PUBLISHED).order_by("-view_count", "-id").values_list("id", "slug")[:top]
    )
    for article_id, slug in most_read:
        paths += [f"/api/articles/{article_id}/", f"/articles/{slug}/"]
    return paths


def _client() -> Client:
    hosts = [h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")]
    # A failing page is reported in the counts, not raised: one bad path must not stop the run.
    return Client(SERVER_NAME=hosts[0] if hosts else "localhost", raise_request_exception=False)


def warm_cache(*, progress: Callable[[Iterable[str]], Iterable[str]] = lambda paths: paths) -> dict:
    """Request every warm path once, under a Redis lock (the view-count flush's kind). Returns a
    report: counts by X-Cache and by status. Raises WarmCacheLocked at once when another run
    holds the lock. Redis unreachable: runs unlocked (it then only fills this process's L1)."""
    l2 = engine.default().l2
    lock = l2.client.lock(keys.warm_cache_lock_key(), timeout=WARM_LOCK_SECONDS, blocking=False)
    try:
        acquired = l2.call(lock.acquire)
    except L2Unavailable as exc:
        logger.warning("warm_cache: Redis unreachable (%s), running without the lock", exc)
        return _warm(progress)
    if not acquired:
        raise WarmCacheLocked("another warm_cache run holds the lock")
    try:
        return _warm(progress)
    finally:
        try:
            l2.call(lock.release)
        except (L2Unavailable, redis.exceptions.LockError) as exc:
            logger.warning("warm_cache: lock not released (%s); it expires in %d s", exc, WARM_LOCK_SECONDS)


def _warm(progress) -> dict:
    started = time.time()
    client = _client()
    report = {"paths": 0, "by_source": {}, "by_status": {}}
    for path in progress(warm_paths()):
        # secure=: behind TLS (SECURE_SSL_REDIRECT) a plain request would only get a redirect.
        response = client.get(path, secure=getattr(settings, "SECURE_SSL_REDIRECT", False))
        source = response.get("X-Cache", "uncached")
        report["paths"] += 1
        report["by_source"][source] = report["by_source"].get(source, 0) + 1
        report["by_status"][str(response.status_code)] = report["by_status"].get(str(response.status_code), 0) + 1
    report["seconds"] = round(time.time() - started, 3)
    report["finished_at"] = time.time()
    _record(report)
    return report


def _record(report: dict) -> None:
    l2 = engine.default().l2
    try:
        l2.call(l2.client.set, keys.warm_cache_status_key(), json.dumps(report))
    except L2Unavailable:
        pass  # the report is also returned and logged by the caller


def last_run() -> dict | None:
    """The report of the last warm_cache run, or None (never run, or Redis unreachable)."""
    try:
        raw = engine.default().l2.get(keys.warm_cache_status_key())
    except L2Unavailable:
        return None
    return json.loads(raw) if raw else None
