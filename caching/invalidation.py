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


def app_tiers_behind() -> bool:
    """Whether invalidations asked for in this process are still waiting for Redis (queued for
    replay: L2 may hold what they remove). Then no edge may be purged on their behalf before the
    CDN drain has re-applied them (an edge re-fetch would find the old value in L2). Costs nothing."""
    return conf.get().enabled and bool(fetcher.current().pending_tags)


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


def transaction_scope(connection) -> tuple:
    """The savepoints the current work is in (atomic(savepoint=False) blocks add none)."""
    return tuple(sid for sid in connection.savepoint_ids if sid is not None)


def open_scope(connection) -> tuple | None:
    """The scope that work registered now may later be joined in (see `joins`), or None when it
    may not: autocommit, or directly in a test case's own atomic block (Django's TestCase,
    pytest-django: they are not the app's transactions, and tests run on_commit callbacks by
    hand, per block)."""
    if not connection.in_atomic_block:
        return None
    blocks = connection.atomic_blocks
    owner = next((block for block in reversed(blocks) if block.savepoint), blocks[0])
    if getattr(owner, "_from_testcase", False):
        return None
    return transaction_scope(connection)


def joins(connection, scope: tuple | None, callback) -> bool:
    """Whether work registered in `scope` (open_scope then) with on_commit `callback` can take
    more of the current transaction's work: the callback is still to run (no rollback of its
    savepoint, no commit since), and we are in that scope or, when it was the outermost
    transaction itself, in a savepoint inside it."""
    if scope is None or not connection.in_atomic_block or getattr(callback, "closed", False):
        return False
    current = transaction_scope(connection)
    if current != scope and (scope or _in_test_case_block(connection)):
        return False
    return any(entry[1] is callback for entry in connection.run_on_commit)


def _in_test_case_block(connection) -> bool:
    return open_scope(connection) is None


class _PendingAppTiers:
    """The app-tier invalidation of the transaction in progress on one connection: every tag
    asked for in it, applied in one call (one invalidate.lua, one broadcast) after commit."""

    def __init__(self, scope: tuple):
        self.scope = scope
        self.tags: set[str] = set()
        self.closed = False

    def __call__(self):
        self.closed = True
        invalidate_app_tiers(self.tags, committed_at=time.time())


def invalidate_tags_on_commit(tags: Iterable[str] | str, *, using: str | None = None) -> frozenset[str]:
    """Hooks now (inside the transaction: the outbox rows commit or roll back with the change),
    app tiers after commit. The app tiers' on_commit callback is registered before the hooks
    run, so it runs before anything the hooks schedule on commit (the CDN drain): L2 is
    invalidated and every live L1 has applied the broadcast before a purge is sent.

    Every call inside one transaction joins one app-tier invalidation, run once after commit
    (a delete cascading to N rows asks N+1 times; the CDN hook coalesces its rows the same
    way). A tag asked for in a savepoint that rolls back may still be invalidated: more, never
    less. Returns this call's tag set."""
    tagset = _tagset(tags)
    if not tagset:
        return tagset
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:  # autocommit: on_commit would run at once
        invalidate_app_tiers(tagset, committed_at=time.time())
        _run_hooks(tagset)
        return tagset
    pending = getattr(connection, "_caching_pending_invalidation", None)
    if pending is None or not joins(connection, pending.scope, pending):
        pending = _PendingAppTiers(open_scope(connection))
        connection._caching_pending_invalidation = pending
        transaction.on_commit(pending, using=using)
    pending.tags |= tagset
    _run_hooks(tagset)
    return tagset
