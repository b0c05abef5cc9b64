"""newsite's tiered cache: L1 per process, L2 in Redis, leases, tags. See docs/caching.md.

Public API (stable): fetch, get_or_load, get_many_or_load, cached, invalidate_tags,
invalidate_tags_on_commit, on_invalidate, Fetched and the source names HIT_L1/HIT_L2/MISS/STALE.
Tags: caching.tags; keys: caching.keys; metrics: caching.metrics; stats: caching.stats.snapshot().
"""

from caching.api import (  # noqa: F401
    HIT_L1,
    HIT_L2,
    MISS,
    STALE,
    Fetched,
    cached,
    fetch,
    get_many_or_load,
    get_or_load,
    invalidate_tags,
    invalidate_tags_on_commit,
    on_invalidate,
)
