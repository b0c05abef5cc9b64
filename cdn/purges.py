"""Asking for a CDN purge: one outbox row per transaction, written in it, drained after commit.

A purge row commits or rolls back with the change that caused it (docs/cdn.md). Every purge asked
for in one transaction goes into one row (a delete cascading to N comments asks N+1 times): one
INSERT, an UPDATE only when a later ask adds tags, one drain task on commit. The drain is sent to
Celery by transaction.on_commit; if the broker is unreachable then, the row stays pending and the
re-drive (cdn.purge_outbox_redrive) delivers it. A row names what to purge, not where: the
backends configured where it is delivered decide (cdn/outbox.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from caching.invalidation import joins, open_scope
from cdn.models import PurgeOutbox
from cdn.tasks import schedule_drain


@dataclass(eq=False)
class _OpenRow:
    """The row of the transaction in progress on one connection, and what it holds.

    Each write of the row registers an on_commit marker: a savepoint rollback drops the markers
    of the writes it undid (Django removes their callbacks), so `known()` is what the row holds.
    """

    pk: int
    scope: tuple | None  # caching.invalidation.open_scope when the row was written
    drain: object = None  # the on_commit callback that schedules the row's drain
    writes: list[tuple[object, frozenset[str], frozenset[str]]] = field(default_factory=list)

    def alive(self, connection) -> bool:
        return joins(connection, self.scope, self.drain)

    def known(self, connection) -> tuple[set[str], set[str]]:
        tags: set[str] = set()
        urls: set[str] = set()
        for marker, marker_tags, marker_urls in self.writes:
            if _registered(connection, marker):
                tags |= marker_tags
                urls |= marker_urls
        return tags, urls


def _registered(connection, callback) -> bool:
    return any(entry[1] is callback for entry in connection.run_on_commit)


def enqueue_purge(tags, *, urls=(), using: str | None = None) -> list[int]:
    """Purge `tags` and `urls` from every CDN after the current transaction commits.

    Returns [row id] ([] when there is nothing to purge). Outside a transaction: one row now,
    drained at once. Inside one: the transaction's row, created by its first ask (one INSERT)
    and widened by later ones (one UPDATE when they add something).
    """
    tags = frozenset(str(tag) for tag in tags if tag)
    urls = frozenset(str(url) for url in urls if url)
    if not tags and not urls:
        return []
    connection = transaction.get_connection(using)
    open_row: _OpenRow | None = getattr(connection, "_cdn_open_purge", None)
    if open_row is not None and open_row.alive(connection):
        known_tags, known_urls = open_row.known(connection)
        if not (tags <= known_tags and urls <= known_urls):
            PurgeOutbox.objects.using(using).filter(pk=open_row.pk).update(
                tags=sorted(known_tags | tags), urls=sorted(known_urls | urls)
            )
            marker = _noop()
            transaction.on_commit(marker, using=using)
            open_row.writes.append((marker, known_tags | tags, known_urls | urls))
        return [open_row.pk]

    now = timezone.now()
    row = PurgeOutbox.objects.using(using).create(
        tags=sorted(tags), urls=sorted(urls), next_attempt_at=now, created_at=now
    )
    if not connection.in_atomic_block:  # autocommit: on_commit runs now
        transaction.on_commit(lambda: schedule_drain([row.pk]), using=using)
        return [row.pk]
    open_row = _OpenRow(pk=row.pk, scope=open_scope(connection))

    def drain():
        drain.closed = True
        schedule_drain([open_row.pk])

    drain.closed = False
    open_row.drain = drain
    open_row.writes.append((drain, tags, urls))
    connection._cdn_open_purge = open_row
    transaction.on_commit(drain, using=using)
    return [row.pk]


def _noop():
    def marker():
        pass

    return marker


def enqueue_purge_hook(tagset) -> None:
    """caching.invalidation.on_invalidate hook: these tags go into the transaction's row."""
    enqueue_purge(tagset)


def retry_now(queryset) -> int:
    """Make rows pending and due now, for every configured backend again (admin action); drains
    them after commit. Returns the count."""
    ids = list(queryset.values_list("pk", flat=True))
    PurgeOutbox.objects.filter(pk__in=ids).update(
        status=PurgeOutbox.Status.PENDING, next_attempt_at=timezone.now(), delivered_to=[]
    )
    transaction.on_commit(lambda: schedule_drain(ids))
    return len(ids)
