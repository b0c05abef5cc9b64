"""Celery tasks of the articles app: thin, they call services and report."""

import logging

from celery import shared_task

from . import counters, schedule, warm

logger = logging.getLogger("newsite.tasks")


@shared_task(name="articles.warm_cache", acks_late=True, time_limit=600, soft_time_limit=540)
def warm_cache_task(all_articles: bool = False, refresh_within: float = 0.0, edge_url: str | None = None) -> dict:
    """edge_url: None for settings.WARM_CACHE_EDGE_URL, "" for no edge warm (warm.warm_cache)."""
    try:
        report = warm.warm_cache(all_articles=all_articles, refresh_within=refresh_within, edge_url=edge_url)
    except warm.WarmCacheLocked as exc:
        logger.info("warm_cache: skipped, %s", exc)
        return {"skipped": str(exc)}
    logger.info("warm_cache: %s", report)
    return report


@shared_task(
    name="articles.flush_view_counts",
    acks_late=True,
    time_limit=60,
    soft_time_limit=50,
    autoretry_for=(Exception,),  # noqa: BLE001 (a failed flush keeps its counts; retry is safe)
    retry_backoff=True,
    max_retries=5,
)
def flush_view_counts_task() -> int:
    applied = counters.flush_view_counts()
    if applied:
        logger.info("flush_view_counts: %d reads written", applied)
    return applied


@shared_task(name="articles.fire_scheduled_changes", acks_late=True, ignore_result=True, time_limit=30,
             soft_time_limit=25)
def fire_scheduled_changes_task() -> dict:
    """Beat, every SCHEDULE_TICK_SECONDS: invalidate what the moments since the last run changed
    (articles/schedule.py). Idempotent; concurrent runs skip."""
    fired = schedule.fire_due_changes()
    if fired.go_live or fired.take_down or fired.windows:
        logger.info("scheduled changes: %s", fired.as_dict())
    return fired.as_dict()
