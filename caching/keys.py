"""Every cache key string is built here (Zulip's `<thing>_cache_key()` habit).

Two layers:

- *logical* keys, what callers pass to `fetch()`: "<prefix>:<parts>". The part before the first
  colon is the key prefix used as the `prefix` label of the metrics, so keep it a fixed word.
  User input (search queries, slugs) is hashed so keys stay short and safe.
- *physical* Redis keys, built from a logical key and the CACHES KEY_PREFIX (the raw client does
  not apply Django's prefix). All of them share "<KEY_PREFIX>:nc:" so test runs and sites sharing
  one Redis never collide. Pub/sub ignores db indexes, so the channel carries the prefix too.
"""

from __future__ import annotations

import hashlib
import re

from caching import conf

# Bump when the stored envelope format changes: old entries are then simply never read.
ENVELOPE_VERSION = "2"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def key_prefix_of(key: str) -> str:
    """The metrics label of a logical key: its first colon-separated word."""
    head, _, _ = key.partition(":")
    return head


# --- Logical keys for data sets (selectors) ----------------------------------------------------


def article_key(article_id: int) -> str:
    return f"article:{int(article_id)}"


def article_slug_key(slug: str) -> str:
    return f"article_slug:{_digest(slug)}"


def home_feed_key(page: int) -> str:
    return f"home_feed:{int(page)}"


def category_list_key() -> str:
    return "category_list"


def category_key(slug: str) -> str:
    return f"category:{_digest(slug)}"


def category_feed_key(category_id: int, page: int) -> str:
    return f"category_feed:{int(category_id)}:{int(page)}"


def author_key(author_id: int) -> str:
    return f"author:{int(author_id)}"


def author_articles_key(author_id: int, page: int) -> str:
    return f"author_articles:{int(author_id)}:{int(page)}"


def trending_key() -> str:
    return "trending"


def breaking_key() -> str:
    return "breaking"


def search_key(query: str, page: int) -> str:
    normalized = " ".join(query.lower().split())
    return f"search:{_digest(normalized)}:{int(page)}"


def user_profile_key(user_id: int) -> str:
    return f"user_profile:{int(user_id)}"


# --- Response keys (HTTP response caching, caching/http.py) -------------------------------------


_PLAIN_TAIL = re.compile(r"[A-Za-z0-9_=&.-]{0,120}")


def response_key(route: str, url_kwargs: dict, params: dict) -> str:
    """The key of a public response: its route name, URL kwargs and the view's own validated
    query parameters, sorted. Prefix "resp.<route>" (the metrics label). A tail that is not
    short plain ASCII (search queries, long slugs) is hashed."""
    items = sorted(url_kwargs.items()) + sorted(params.items()) if params else sorted(url_kwargs.items())
    tail = "&".join(f"{k}={v}" for k, v in items)
    if not _PLAIN_TAIL.fullmatch(tail):
        tail = _digest(tail)
    return f"resp.{route}:{tail}"


# --- Physical Redis keys (internal to caching/) ------------------------------------------------


def _root() -> str:
    return f"{conf.get().key_prefix}:nc{ENVELOPE_VERSION}"


def value_key(key: str) -> str:
    """The Redis string holding the envelope of a logical key."""
    return f"{_root()}:v:{key}"


def lease_key(key: str) -> str:
    """The Redis string holding the lease token of the process loading a key."""
    return f"{_root()}:l:{key}"


def sequence_key() -> str:
    """The global invalidation sequence (an integer that only grows)."""
    return f"{_root()}:seq"


def tag_invalidated_key(tag: str) -> str:
    """Sequence number of the latest invalidation of a tag (expires after TAG_INVALIDATION_TTL)."""
    return f"{_root()}:ti:{tag}"


def tag_bucket_key(tag: str, bucket: int) -> str:
    """Set of value keys carrying `tag` whose hard expiry falls in time bucket `bucket`."""
    return f"{_root()}:tk:{tag}:{bucket}"


def invalidation_channel() -> str:
    """Pub/sub channel of L1 invalidations (pub/sub ignores db indexes: the prefix isolates)."""
    return f"{_root()}:inval"


def subscriber_client_name(pid: int) -> str:
    """CLIENT SETNAME of a process's subscription connection (ops and tests find it by name)."""
    return f"{conf.get().key_prefix}-l1sub-{pid}"


# --- Counters and background work (articles/views_counter.py, articles/warm.py) ---------------


def views_pending_key() -> str:
    """Hash article_id -> reads not yet written to PostgreSQL (write-behind)."""
    return f"{conf.get().key_prefix}:views:pending"


def views_processing_key() -> str:
    """The pending hash moved aside by a flush in progress (kept until PostgreSQL has it)."""
    return f"{conf.get().key_prefix}:views:processing"


def views_batch_id_key() -> str:
    """The id of the batch in views_processing_key (recorded in PostgreSQL with the counts)."""
    return f"{conf.get().key_prefix}:views:batch"


def views_flush_lock_key() -> str:
    """Lock held by the view-count flush in progress (flushes never overlap)."""
    return f"{conf.get().key_prefix}:views:flush-lock"


def trending_scores_key() -> str:
    """Sorted set article_id -> time-decayed read score."""
    return f"{conf.get().key_prefix}:trending:scores"


def warm_cache_status_key() -> str:
    """JSON of the last warm_cache run (for /health/cache/)."""
    return f"{conf.get().key_prefix}:warm_cache:last"


def article_published_key(article_id: int) -> str:
    """Whether an article id is published (the view counter's 404 check, no query on a hit)."""
    return f"article_published:{int(article_id)}"


# --- The Django cache backend (caching/backends/): physical keys of its own namespace -----------
# `made_key` is Django's make_key() result (KEY_PREFIX:version:key, or KEY_FUNCTION's).


def backend_value_key(namespace: str, made_key: str) -> str:
    """The Redis string holding one Django cache value (also its L1 key)."""
    return f"{namespace}:v:{made_key}"


def backend_index_key(namespace: str) -> str:
    """Sorted set of the namespace's value keys scored by expiry (ms; +inf: none), for clear()."""
    return f"{namespace}:index"


def backend_sequence_key(namespace: str) -> str:
    """The namespace's write sequence (orders L1 invalidations, see caching/l1.py)."""
    return f"{namespace}:seq"


def backend_channel(namespace: str, db: int) -> str:
    """Pub/sub channel of the namespace's L1 invalidations (pub/sub ignores db: the db is in it)."""
    return f"{namespace}:db{int(db)}:inval"


def backend_subscriber_client_name(namespace: str, pid: int) -> str:
    """CLIENT SETNAME of a process's subscription connection for the namespace."""
    return f"{namespace}-l1sub-{pid}"
