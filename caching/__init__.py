"""newsite's tiered cache: L1 per process, L2 in Redis, leases, tags. See docs/caching.md.

Public API (stable): fetch, LeaseTimeout, CallersOwnRefusal, get_or_load, fetch_many, invalidate_tags,
invalidate_tags_on_commit, afetch and aget_or_load (async, caching/async_fetch.py), on_invalidate, Fetched and the source names HIT_L1/HIT_L2/MISS/STALE.
The Django cache backend: caching.backends.TieredCache. Tags: caching.tags; keys: caching.keys;
metrics: caching.metrics; stats: caching.stats.snapshot(); the engine under both:
caching.engine.
"""

from caching.async_fetch import afetch, aget_or_load
from caching.bulk import fetch_many
from caching.fetcher import CallersOwnRefusal, LeaseTimeout, fetch, get_or_load
from caching.invalidation import invalidate_tags, invalidate_tags_on_commit, on_invalidate
from caching.l1 import HIT_L1, HIT_L2, MISS, STALE, Fetched

__all__ = [
    "HIT_L1", "HIT_L2", "MISS", "STALE", "CallersOwnRefusal", "Fetched", "LeaseTimeout", "fetch", "fetch_many", "get_or_load",
    "afetch", "aget_or_load", "invalidate_tags", "invalidate_tags_on_commit", "on_invalidate",
]
