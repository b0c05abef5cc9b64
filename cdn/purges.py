"""Asking for a CDN purge: outbox rows written in the writer's transaction, drained after commit.

A purge row commits or rolls back with the change that caused it (docs/cdn.md). The drain is
sent to Celery by transaction.on_commit; if the broker is unreachable then, the rows stay pending
and the re-drive (cdn.purge_outbox_redrive) delivers them.
"""

from functools import partial

from django.db import transaction
from django.utils import timezone

from cdn.backends import get_backends
from cdn.models import PurgeOutbox
from cdn.tasks import schedule_drain


def enqueue_purge(tags, *, urls=()) -> list[int]:
    """Write one outbox row per configured backend in the current transaction; drain on commit.

    Returns the new row ids ([] when there is nothing to purge). Costs one INSERT.
    """
    tags = sorted({str(tag) for tag in tags if tag})
    urls = sorted({str(url) for url in urls if url})
    if not tags and not urls:
        return []
    now = timezone.now()
    rows = PurgeOutbox.objects.bulk_create(
        [
            PurgeOutbox(backend=alias, tags=tags, urls=urls, next_attempt_at=now, created_at=now)
            for alias in get_backends()
        ]
    )
    ids = [row.pk for row in rows]
    transaction.on_commit(partial(schedule_drain, ids))
    return ids


def enqueue_purge_hook(tagset) -> None:
    """caching.invalidation.on_invalidate hook: one outbox row per backend for these tags."""
    enqueue_purge(tagset)


def retry_now(queryset) -> int:
    """Make rows pending and due now (admin action); drains them after commit. Returns the count."""
    ids = list(queryset.values_list("pk", flat=True))
    PurgeOutbox.objects.filter(pk__in=ids).update(
        status=PurgeOutbox.Status.PENDING, next_attempt_at=timezone.now()
    )
    transaction.on_commit(partial(schedule_drain, ids))
    return len(ids)
