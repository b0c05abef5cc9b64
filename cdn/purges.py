"""Asking for a CDN purge: one outbox row per transaction, written in it, delivered after commit.

A purge row commits or rolls back with the change that caused it (docs/cdn.md). Every purge asked
for in one transaction goes into one row (a delete cascading to N comments asks N+1 times): one
INSERT, an UPDATE only when a later ask adds tags. On commit, the writer purges the edges that
acknowledge (Varnish nodes) itself, within a bounded wait (cdn/edge_ack.py), when every ask came
after its app-tier invalidation; what they did not confirm, and every other backend, goes to the
drain, sent to Celery; if the broker is unreachable then, the row stays pending and the re-drive
(cdn.purge_outbox_redrive) delivers it. A row names what to purge, not where: the backends
configured where it is delivered decide (cdn/outbox.py).

The outbox is also the durable record of the app tiers' invalidations: `reapply_recent` (the
caching.engine.on_rewound hook) re-applies the recent rows when Redis went back in time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connections, transaction
from django.utils import timezone

from caching import conf
from caching.invalidation import invalidate_app_tiers, registered, transaction_invalidation, transaction_scope
from cdn.edge_ack import RowContent, purge_before_returning
from cdn.models import PurgeOutbox
from cdn.outbox import outbox_setting
from cdn.tasks import schedule_drain


@dataclass(eq=False)
class _OpenRow:
    """The row of the transaction in progress on one connection, and what it holds. It is kept
    in the transaction's caching.invalidation.TransactionInvalidation (the one accumulator of
    the transaction): asks join the row while they join that.

    Each write of the row is marked by an on_commit callback registered in its savepoint: the
    TransactionInvalidation itself for the write that created the row in its scope, the row's
    own delivery for a row created in a savepoint inside it, a no-op marker for each widening. A
    savepoint rollback drops the markers of the writes it undid (Django removes their
    callbacks), so `alive()` says whether the row still exists and `known()` what it holds.
    """

    pk: int
    due: object = None  # when the row may be sent (later than now: in its coalescing window)
    after_app_tiers: bool = False  # every ask's tags are invalidated in the app tiers before the delivery
    writes: list[tuple[object, frozenset[str], frozenset[str]]] = field(default_factory=list)

    def alive(self, connection) -> bool:
        created = self.writes[0][0]
        return not getattr(created, "closed", False) and registered(connection, created)

    def known(self, connection) -> tuple[set[str], set[str]]:
        tags: set[str] = set()
        urls: set[str] = set()
        for marker, marker_tags, marker_urls in self.writes:
            if registered(connection, marker):
                tags |= marker_tags
                urls |= marker_urls
        return tags, urls


OPEN_ROW = "cdn.purge_row"  # the key of the open row in TransactionInvalidation.state


def enqueue_purge(tags, *, urls=(), using: str | None = None, after_app_tiers: bool = False) -> list[int]:
    """Purge `tags` and `urls` from every CDN after the current transaction commits.

    Returns [row id] ([] when there is nothing to purge). Outside a transaction: one row now,
    delivered at once. Inside one: the transaction's row, created by its first ask (one INSERT)
    and widened by later ones (one UPDATE when they add something), delivered at commit after
    the transaction's app-tier invalidation (caching.invalidation.TransactionInvalidation).
    `after_app_tiers`: the caller has the tags invalidated in L2 and every L1 before this row's
    delivery runs (now, or at the transaction's commit). Only then may the writer purge the
    edges itself (cdn/edge_ack.py); otherwise the drain does, after invalidating the app tiers
    (an edge re-fetch must not find the old value in L2).
    """
    tags = frozenset(str(tag) for tag in tags if tag)
    urls = frozenset(str(url) for url in urls if url)
    if not tags and not urls:
        return []
    connection = transaction.get_connection(using)
    pending = transaction_invalidation(using) if connection.in_atomic_block else None
    open_row: _OpenRow | None = pending.state.get(OPEN_ROW) if pending is not None else None
    if open_row is not None and open_row.alive(connection):
        known_tags, known_urls = open_row.known(connection)
        if not (tags <= known_tags and urls <= known_urls):
            widened = {"tags": sorted(known_tags | tags), "urls": sorted(known_urls | urls)}
            if open_row.due is not None and not (widened["urls"] == [] and coalesce_window(known_tags | tags)):
                open_row.due = widened["next_attempt_at"] = timezone.now()  # no longer a count-only purge: at once
            PurgeOutbox.objects.using(using).filter(pk=open_row.pk).update(**widened)
            open_row.after_app_tiers = open_row.after_app_tiers and after_app_tiers
            marker = _widening_marker()
            transaction.on_commit(marker, using=using)
            open_row.writes.append((marker, known_tags | tags, known_urls | urls))
        return [open_row.pk]

    now = timezone.now()
    window = coalesce_window(tags) if not urls else 0.0
    row = _waiting_row_with_these_tags(connection, using, tags, now) if window else None
    if row is None:
        row = PurgeOutbox.objects.using(using).create(
            tags=sorted(tags), urls=sorted(urls), next_attempt_at=now + timedelta(seconds=window), created_at=now
        )
    if pending is None:  # autocommit: on_commit runs now
        content = RowContent(sorted(tags), sorted(urls), now)  # a new row (waiting rows are joined in transactions only)
        transaction.on_commit(lambda: deliver_committed(row.pk, wait=window, edges_first=after_app_tiers,
                                                        content=content), using=using)
        return [row.pk]
    open_row = _OpenRow(pk=row.pk, due=row.next_attempt_at, after_app_tiers=after_app_tiers)

    def drain():
        drain.closed = True
        wait = (open_row.due - timezone.now()).total_seconds()
        # One write (no widening): its tags are the row's; after widenings, only the database
        # knows which of them survived their savepoints.
        _, first_tags, first_urls = open_row.writes[0]
        content = RowContent(sorted(first_tags), sorted(first_urls), now) if len(open_row.writes) == 1 else None
        deliver_committed(open_row.pk, wait=wait, edges_first=open_row.after_app_tiers, content=content)

    drain.closed = False
    if pending.scope is None or pending.scope == transaction_scope(connection):
        # Written where the transaction's invalidation was registered: they commit or roll back
        # together, and it delivers the row after the app tiers.
        open_row.writes.append((pending, tags, urls))
        pending.after_app_tiers(drain)
    else:
        # Written in a savepoint inside it: delivered by a callback of that savepoint (dropped if
        # it rolls back, with the row), registered after the transaction's, so it runs after
        # the app tiers too.
        open_row.writes.append((drain, tags, urls))
        transaction.on_commit(drain, using=using)
    pending.state[OPEN_ROW] = open_row
    return [row.pk]


def deliver_committed(row_id: int, *, wait: float, edges_first: bool, content: RowContent | None = None) -> None:
    """A committed row's delivery: due now and `edges_first` -> the acknowledging edges now,
    within the bounded wait (cdn/edge_ack.py), and the drain only for what they left; due in
    `wait` seconds (a coalescing window) or not `edges_first` -> the drain, as always.
    `content`: what the row holds, when the caller knows it exactly."""
    if wait > 0:
        schedule_drain([row_id], countdown=wait)
    elif not (edges_first and purge_before_returning(row_id, content)):
        schedule_drain([row_id])


def coalesce_window(tags: frozenset[str]) -> float:
    """Seconds a purge of `tags` may wait to be merged (CDN_OUTBOX["COALESCE"]): the shortest
    window of its tags when every tag has one, else 0 (sent at once)."""
    windows = outbox_setting("COALESCE")
    if not windows:
        return 0.0
    found = [next((float(s) for prefix, s in windows.items() if tag.startswith(prefix)), None) for tag in tags]
    return min(found) if found and None not in found else 0.0


def _waiting_row_with_these_tags(connection, using, tags: frozenset[str], now) -> PurgeOutbox | None:
    """A committed row waiting in its coalescing window with exactly these tags, locked for this
    transaction (FOR UPDATE SKIP LOCKED: a row a drain or another writer holds is left alone):
    this transaction's purge is that row's. Held until the commit, so no drain sends it before
    this change is committed; the commit then schedules its drain when it is due. PostgreSQL
    only (elsewhere: a row of its own)."""
    if not connection.in_atomic_block or not connection.features.has_select_for_update_skip_locked:
        return None
    return (
        PurgeOutbox.objects.using(using).select_for_update(skip_locked=True)
        .filter(status=PurgeOutbox.Status.PENDING, attempts=0, next_attempt_at__gt=now, tags=sorted(tags), urls=[])
        .order_by("pk").first()
    )


def _widening_marker():
    """An on_commit callback that does nothing: it marks a write of the open row (_OpenRow)."""

    def marker():
        pass

    return marker


def enqueue_purge_hook(tagset) -> None:
    """caching.invalidation.on_invalidate hook: these tags go into the transaction's row,
    delivered at commit after their app-tier invalidation."""
    enqueue_purge(tagset, after_app_tiers=True)


logger = logging.getLogger("cdn")

REWIND_MARGIN = 300.0  # seconds added to the window: a row is written before its transaction commits
REAPPLY_CHUNK = 500  # tags per app-tier invalidation and per re-application row


def reapply_recent(engine) -> int:
    """caching.engine.on_rewound hook: Redis went back in time (an older snapshot, a lagging
    replica promoted), so its L2 may hold values whose invalidations it lost. An RDB stores
    absolute expiry times, so every value still alive was filled less than the longest hard TTL
    ago (conf.max_hard_ttl: the kinds' ttl x (1 + jitter) + grace); any invalidation that
    superseded it was asked for after that, in a transaction that wrote an outbox row. So the
    tags of every row created in that window (plus REWIND_MARGIN), whatever its status, are
    invalidated now in L2 and every L1 (strict: Redis unreachable raises, the engine retries),
    then written as new rows, drained after (the drain repeats the app tiers, then purges every
    CDN: an edge may have re-fetched a restored value meanwhile). More than needed, never less;
    idempotent. Only for the fetch face's engine (TieredCache has no outbox). Returns the tags
    re-applied. Runs in the engine's own thread: its database connection is closed after."""
    cache_conf = conf.get()
    if not cache_conf.enabled or engine.settings != cache_conf.engine:
        return 0
    try:
        since = timezone.now() - timedelta(seconds=cache_conf.max_hard_ttl + REWIND_MARGIN)
        tags: set[str] = set()
        urls: set[str] = set()
        for row_tags, row_urls in PurgeOutbox.objects.filter(created_at__gte=since).values_list("tags", "urls").iterator():
            tags.update(row_tags)
            urls.update(row_urls)
        ordered = sorted(tags)
        chunks = [ordered[i:i + REAPPLY_CHUNK] for i in range(0, len(ordered), REAPPLY_CHUNK)] or [[]]
        for chunk in chunks:
            invalidate_app_tiers(chunk, strict=True)
        for i, chunk in enumerate(chunks):  # autocommit: one row each, its drain sent at once
            enqueue_purge(chunk, urls=sorted(urls) if i == 0 else (), after_app_tiers=True)
        logger.warning("event=cdn_rewind_reapplied since=%s tags=%d urls=%d", since.isoformat(), len(tags), len(urls))
        return len(tags)
    finally:
        connections.close_all()


def retry_now(queryset) -> int:
    """Make rows pending and due now, for every configured backend again (admin action); drains
    them after commit. Returns the count."""
    ids = list(queryset.values_list("pk", flat=True))
    PurgeOutbox.objects.filter(pk__in=ids).update(
        status=PurgeOutbox.Status.PENDING, next_attempt_at=timezone.now(), delivered_to=[]
    )
    transaction.on_commit(lambda: schedule_drain(ids))
    return len(ids)
