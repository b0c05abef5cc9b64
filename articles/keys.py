"""The articles app's keys, built here and nowhere else with the library's key scheme
(caching/keys.py): the data sets its selectors cache, and its own Redis data beside the cache
(the view counters and trending scores of articles/counters.py, the warm-up's lock and report of
articles/warm.py). Response keys are the library's (caching.keys.response_key)."""

from __future__ import annotations

from caching.keys import app_key, client_part

# --- Logical keys of data sets (selectors.py, through caching.fetch) -------------------------------


def user_profile_key(user_id: int) -> str:
    return f"user_profile:{int(user_id)}"


def article_published_key(article_id: int) -> str:
    """Whether an article id is published (the view counter's 404 check, no query on a hit)."""
    return f"article_published:{int(article_id)}"


# --- Counters (counters.py) ------------------------------------------------------------------------


def views_pending_key() -> str:
    """Hash article_id -> reads not yet written to PostgreSQL (write-behind)."""
    return app_key("views", "pending")


def views_processing_key() -> str:
    """The pending hash moved aside by a flush in progress (kept until PostgreSQL has it)."""
    return app_key("views", "processing")


def views_batch_id_key() -> str:
    """The id of the batch in views_processing_key (recorded in PostgreSQL with the counts)."""
    return app_key("views", "batch")


def views_flush_lock_key() -> str:
    """Lock held by the view-count flush in progress (flushes never overlap)."""
    return app_key("views", "flush-lock")


def views_seen_key(article_id: int, client: str) -> str:
    """Set while a client's read of an article is counted (the dedupe window of a view)."""
    return app_key("views", "seen", int(article_id), client_part(client))


def trending_scores_key(epoch: int) -> str:
    """Sorted set article_id -> time-decayed read score of one decay epoch (a day)."""
    return app_key("trending", "scores", int(epoch))


# --- The warm-up (warm.py) -------------------------------------------------------------------------


def warm_cache_lock_key() -> str:
    """Lock held by the warm_cache run in progress (two deploys at once warm once)."""
    return app_key("warm_cache", "lock")


def warm_cache_status_key() -> str:
    """JSON of the last warm_cache run (for /health/cache/)."""
    return app_key("warm_cache", "last")
