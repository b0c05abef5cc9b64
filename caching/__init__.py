"""A tiered cache for Django: L1 per process, L2 in Redis, leases, tags. See docs/caching.md.

Public API (stable): fetch, LeaseTimeout, CallersOwnRefusal, get_or_load, fetch_many, invalidate_tags,
invalidate_tags_on_commit, on_invalidate; their async twins afetch, aget_or_load, afetch_many
(caching/async_fetch.py) and ainvalidate_tags (caching/invalidation.py);
Fetched and the source names HIT_L1/HIT_L2/MISS/STALE, L2Unavailable/L2Timeout (Redis cannot be
used / a command timed out). An app's own Redis data (locks, Lua scripts, commands, a raw look at
a cached entry): caching.app_data.
The Django cache backend: caching.backends.TieredCache. Key scheme: caching.keys;
metrics: caching.metrics; stats: caching.stats.snapshot(); the engine under both:
caching.engine.
"""

from caching.async_fetch import afetch, afetch_many, aget_or_load
from caching.bulk import fetch_many
from caching.fetcher import CallersOwnRefusal, LeaseTimeout, fetch, get_or_load
from caching.invalidation import ainvalidate_tags, invalidate_tags, invalidate_tags_on_commit, on_invalidate
from caching.l1 import HIT_L1, HIT_L2, MISS, STALE, Fetched
from caching.l2 import L2Timeout, L2Unavailable

__all__ = [
    "HIT_L1", "HIT_L2", "MISS", "STALE", "CallersOwnRefusal", "Fetched", "LeaseTimeout", "fetch", "fetch_many", "get_or_load",
    "L2Timeout", "L2Unavailable", "afetch", "afetch_many", "aget_or_load", "ainvalidate_tags", "invalidate_tags",
    "invalidate_tags_on_commit",
    "on_invalidate",
]
