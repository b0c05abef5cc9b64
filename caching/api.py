"""The public API of the tiered cache (re-exported by `caching`)."""

from caching.core import cached, fetch, get_many_or_load, get_or_load
from caching.invalidation import invalidate_tags, invalidate_tags_on_commit, on_invalidate
from caching.l1 import HIT_L1, HIT_L2, MISS, STALE, Fetched

__all__ = [
    "HIT_L1", "HIT_L2", "MISS", "STALE", "Fetched", "cached", "fetch", "get_many_or_load", "get_or_load",
    "invalidate_tags", "invalidate_tags_on_commit", "on_invalidate",
]
