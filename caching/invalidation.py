"""Tag invalidation: the write side.

`invalidate_tags(tags)` acts now: L2 (invalidate.lua: O(tags x buckets + deleted values), one
round trip), this process's L1, and every other process's L1 through the pub/sub broadcast.
`invalidate_tags_on_commit(tags)` does the same after the current transaction commits (a rollback
invalidates nothing) - the variant services should use.

`on_invalidate` is the registration point for other tiers (the CDN outbox): each callable gets
the frozenset of tags, synchronously, inside the caller's transaction, so outbox rows commit or
roll back with the change. Both functions call the hooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from django.db import transaction

from caching import conf, fetcher

on_invalidate: list[Callable[[frozenset[str]], None]] = []


def _tagset(tags: Iterable[str] | str) -> frozenset[str]:
    if isinstance(tags, str):
        tags = (tags,)
    return frozenset(t for t in tags if t)


def _run_hooks(tagset: frozenset[str]) -> None:
    for hook in list(on_invalidate):
        hook(tagset)


def invalidate_app_tiers(tagset: Iterable[str], *, strict: bool = False, committed_at: float | None = None) -> None:
    """L2 + every process's L1, now, without the on_invalidate hooks. Redis unreachable: this
    process's L1 is cleaned and the tags are queued for replay, or with `strict` L2Unavailable
    is raised (the CDN drain uses it: no purge before L2 has forgotten the old values)."""
    tags = sorted(_tagset(tagset))
    if not tags or not conf.get().enabled:
        return
    fetcher.current().invalidate(tags, strict=strict, committed_at=committed_at)


def invalidate_tags(tags: Iterable[str] | str) -> frozenset[str]:
    """Invalidate now (unsafe inside a transaction that may roll back or whose readers could
    refill from the old snapshot: prefer invalidate_tags_on_commit). Returns the tag set."""
    tagset = _tagset(tags)
    if tagset:
        # App tiers first, then the hooks: a CDN purge must never reach the edge while L2 or
        # an L1 still holds the old value (the edge would re-fetch and keep it).
        invalidate_app_tiers(tagset)
        _run_hooks(tagset)
    return tagset


def invalidate_tags_on_commit(tags: Iterable[str] | str, *, using: str | None = None) -> frozenset[str]:
    """Hooks now (inside the transaction: the outbox rows commit or roll back with the change),
    app tiers after commit. The app tiers' on_commit callback is registered before the hooks
    run, so it runs before anything the hooks schedule on commit (the CDN drain): L2 is
    invalidated and every live L1 has applied the broadcast before a purge is sent. Returns the
    tag set."""
    tagset = _tagset(tags)
    if tagset:
        transaction.on_commit(lambda: invalidate_app_tiers(tagset, committed_at=time.time()), using=using)
        _run_hooks(tagset)
    return tagset
