"""Tag invalidation: the write side.

`invalidate_tags(tags)` acts now: L2 (invalidate.lua: O(tags x buckets + deleted values), one
round trip), this process's L1, and every other process's L1 through the pub/sub broadcast.
`invalidate_tags_on_commit(tags)` does the same after the current transaction commits (a rollback
invalidates nothing) - the variant services should use. `ainvalidate_tags(tags)`: invalidate_tags
for async code, on redis.asyncio.

`on_invalidate` is the registration point for other tiers (the CDN outbox): each callable gets
the frozenset of tags, synchronously, inside the caller's transaction, so outbox rows commit or
roll back with the change. Both functions call the hooks.

One transaction, one accumulator (`TransactionInvalidation`, one on_commit callback): the tags of
every ask in it, applied to the app tiers at commit, and the state other tiers keep for the same
transaction (the CDN outbox's row), delivered after the app tiers (`after_app_tiers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from asgiref.sync import sync_to_async
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
    fetcher.current().invalidator.invalidate(tags, strict=strict, committed_at=committed_at)


async def ainvalidate_app_tiers(tagset: Iterable[str], *, strict: bool = False,
                                committed_at: float | None = None) -> None:
    """invalidate_app_tiers() for a coroutine: the Redis calls on redis.asyncio, nothing on a
    thread (but a REPLICA_FENCE's write position, and the face's first build)."""
    tags = sorted(_tagset(tagset))
    if not tags or not conf.get().enabled:
        return
    face = fetcher._face
    if face is None:  # the process's first use: building the engine waits for its subscription
        face = await sync_to_async(fetcher.current, thread_sensitive=False)()
    await face.invalidator.ainvalidate(tags, strict=strict, committed_at=committed_at)


def app_tiers_behind() -> bool:
    """Whether invalidations asked for in this process are still waiting for Redis (queued for
    replay: L2 may hold what they remove). Then no edge may be purged on their behalf before the
    CDN drain has re-applied them (an edge re-fetch would find the old value in L2). Costs nothing."""
    return conf.get().enabled and bool(fetcher.current().invalidator.pending_tags)


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


async def ainvalidate_tags(tags: Iterable[str] | str) -> frozenset[str]:
    """invalidate_tags() for async code: the app tiers on redis.asyncio (one invalidate.lua, our
    L1 at once, every other L1's acknowledgement awaited, BROADCAST_WAIT at most), then the
    on_invalidate hooks, in a thread (they write rows: the CDN outbox) when there are any.
    When it returns, as invalidate_tags(): no process answers the old value from L1 or L2.
    There is no async on_commit variant: Django's transactions are sync-only, so a write and
    its invalidate_tags_on_commit() run together in the sync code (sync_to_async) that holds
    the transaction. Returns the tag set."""
    tagset = _tagset(tags)
    if tagset:
        await ainvalidate_app_tiers(tagset)  # app tiers first, then the hooks (invalidate_tags)
        if on_invalidate:
            await sync_to_async(_run_hooks, thread_sensitive=True)(tagset)
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


def registered(connection, callback) -> bool:
    """Whether `callback` is still to run on commit (no rollback of the savepoint it was
    registered in dropped it). Cost: a scan of the connection's on_commit list."""
    return any(entry[1] is callback for entry in connection.run_on_commit)


def joins(connection, scope: tuple | None, callback) -> bool:
    """Whether work registered in `scope` (open_scope then) with on_commit `callback` can take
    more of the current transaction's work: the callback is still to run (no rollback of its
    savepoint, no commit since), and we are in that scope or, when it was the outermost
    transaction itself, in a savepoint inside it."""
    if scope is None or not connection.in_atomic_block or getattr(callback, "closed", False):
        return False
    current = transaction_scope(connection)
    if current != scope and (scope or open_scope(connection) is None):
        return False
    return registered(connection, callback)


class TransactionInvalidation:
    """The one accumulator of a transaction's invalidations on one connection: every tag asked
    for in it, and what the other tiers keep for it (`state`: the CDN outbox's open row).
    Registered with Django's on_commit once, by the transaction's first ask; at commit it
    invalidates the app tiers (every tag, one invalidate.lua, one broadcast), then runs the
    callbacks added with `after_app_tiers` (the outbox's delivery), so no purge is sent while L2
    or an L1 holds the old value."""

    def __init__(self, scope: tuple | None):
        self.scope = scope
        self.tags: set[str] = set()
        self.state: dict[str, object] = {}
        self.closed = False
        self.asking = False  # its ask's hooks are running: they join it whatever its scope
        self._after_app_tiers: list[Callable[[], None]] = []

    def after_app_tiers(self, callback: Callable[[], None]) -> None:
        """Run `callback` at this transaction's commit, after its app-tier invalidation."""
        self._after_app_tiers.append(callback)

    def __call__(self):
        self.closed = True
        invalidate_app_tiers(self.tags, committed_at=time.time())
        for callback in self._after_app_tiers:
            callback()


def transaction_invalidation(using: str | None = None) -> TransactionInvalidation:
    """The invalidation of the transaction in progress on `using` (inside an atomic block): the
    one an earlier ask opened when this one can join it (its on_commit callback is still to run,
    see `joins`), else a new one, registered on_commit now."""
    connection = transaction.get_connection(using)
    current = getattr(connection, "_caching_transaction_invalidation", None)
    if current is not None and (current.asking or joins(connection, current.scope, current)):
        return current
    current = TransactionInvalidation(open_scope(connection))
    connection._caching_transaction_invalidation = current
    transaction.on_commit(current, using=using)
    return current


def invalidate_tags_on_commit(tags: Iterable[str] | str, *, using: str | None = None) -> frozenset[str]:
    """Hooks now (inside the transaction: the outbox rows commit or roll back with the change),
    app tiers after commit, before anything the hooks ask to run after them (the CDN outbox's
    delivery, `TransactionInvalidation.after_app_tiers`): L2 is invalidated and every live L1
    has applied the broadcast before a purge is sent.

    Every call inside one transaction joins its one TransactionInvalidation, run once after
    commit (a delete cascading to N rows asks N+1 times; the CDN hook keeps its row in it). A
    tag asked for in a savepoint that rolls back may still be invalidated: more, never less.
    Returns this call's tag set."""
    tagset = _tagset(tags)
    if not tagset:
        return tagset
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:  # autocommit: on_commit would run at once
        invalidate_app_tiers(tagset, committed_at=time.time())
        _run_hooks(tagset)
        return tagset
    pending = transaction_invalidation(using)
    pending.tags |= tagset
    pending.asking, was_asking = True, pending.asking
    try:
        _run_hooks(tagset)
    finally:
        pending.asking = was_asking
    return tagset
