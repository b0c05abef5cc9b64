"""The purge outbox rows after they are written: drain them, back off, report the backlog, prune.

Guarantees (docs/cdn.md): a row is delivered at least once to its backend (purges are
idempotent); a broker or CDN outage only delays it. Rows record attempts, last error and when they
will be tried again. Writing rows and scheduling their drain is cdn/purges.py; the Celery tasks
that run the drain are cdn/tasks.py. Dependencies point one way: purges -> tasks -> outbox.
"""

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from caching.invalidation import invalidate_app_tiers
from caching.l2 import L2Unavailable
from cdn.backends import PurgeError, get_backends
from cdn.metrics import CDN_PURGES, OUTBOX_PENDING
from cdn.models import PurgeOutbox

logger = logging.getLogger("cdn")

DEFAULTS = {
    "BATCH_SIZE": 200,  # rows locked and merged per backend call
    "BACKOFF_BASE": 2.0,  # seconds before the 2nd attempt; doubles each time
    "BACKOFF_MAX": 600.0,  # cap between attempts
    "MAX_ATTEMPTS": 50,  # then the row is marked dead (still in the admin, can be retried); 0 = never
    "RETAIN_DONE_DAYS": 7,  # delivered rows older than this are pruned
    # A second purge of what a drain delivered, this many seconds later (0: none). It removes
    # what an edge stored after the first purge from a fetch that was already in flight (a
    # response built before the write, delivered after the purge). Best effort: the first
    # purge is the durable one.
    "FOLLOW_UP_AFTER": 0.5,
}


def outbox_setting(name):
    """settings.CDN_OUTBOX[name], else DEFAULTS[name]."""
    return {**DEFAULTS, **getattr(settings, "CDN_OUTBOX", {})}[name]


# --- Delivering ------------------------------------------------------------------------------


@dataclass
class DrainReport:
    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    retry_in: float | None = None  # seconds until the earliest failed row is due again


def backoff_seconds(attempts: int) -> float:
    """Delay after the `attempts`-th failed attempt: base * 2**(attempts-1), capped, +-10% jitter."""
    delay = min(outbox_setting("BACKOFF_MAX"), outbox_setting("BACKOFF_BASE") * 2 ** max(0, attempts - 1))
    return delay * random.uniform(0.9, 1.1)


def drain_outbox(ids=None) -> DrainReport:
    """Deliver pending, due rows (only `ids` if given), merged per backend, in batches.

    Each batch is one transaction: SELECT ... FOR UPDATE SKIP LOCKED (so concurrent drains never
    deliver the same row twice and never wait for each other), one provider round per backend,
    one UPDATE per backend. The locks are held during the provider calls (bounded by the backends'
    timeouts). A backend that fails is left alone for the rest of this run. Costs 3 queries for a
    small drain, plus a COUNT for the pending gauge when something failed or on a re-drive.
    """
    report = DrainReport()
    backends = get_backends()
    batch_size = outbox_setting("BATCH_SIZE")
    failed_backends: set[str] = set()
    while True:
        with transaction.atomic():
            _relax_commit_durability()
            qs = PurgeOutbox.objects.select_for_update(skip_locked=True).filter(
                status=PurgeOutbox.Status.PENDING, next_attempt_at__lte=timezone.now()
            )
            if ids is not None:
                qs = qs.filter(pk__in=list(ids))
            if failed_backends:
                qs = qs.exclude(backend__in=failed_backends)
            rows = list(qs.order_by("pk")[:batch_size])
            if not rows:
                break
            if not _app_tiers_first(rows, report):
                break
            by_backend: dict[str, list[PurgeOutbox]] = {}
            for row in rows:
                by_backend.setdefault(row.backend, []).append(row)
            for alias, group in sorted(by_backend.items()):
                if not _deliver(alias, backends.get(alias), group, report):
                    failed_backends.add(alias)
        if len(rows) < batch_size:
            break
    if ids is None or report.failed or report.dead:
        update_pending_gauge()
    return report


def _app_tiers_first(rows, report: DrainReport) -> bool:
    """Invalidate the rows' tags in L2 and every L1 before any purge of them is sent: the writer
    did so after its commit, but if Redis was unreachable from it (or it died in between), an
    edge re-fetch after the purge would find the old value in L2 and keep it for s-maxage. This
    makes app-tier invalidation as durable as the purge: at least once, before it. Redis
    unreachable here too: the rows back off like a failed purge. True if done."""
    tags = {tag for row in rows for tag in row.tags}
    if not tags:
        return True
    try:
        invalidate_app_tiers(tags, strict=True)
    except L2Unavailable as exc:
        logger.warning("event=cdn_purge_deferred rows=%d reason=%s", len(rows), json.dumps(f"app tiers: {exc}"))
        _record_failure(rows, f"app tiers not invalidated: {exc}", None, report)
        return False
    return True


def _relax_commit_durability() -> None:
    # Losing a "done" mark in a database crash only means one more (idempotent) delivery, so the
    # drain's commits need not wait for the WAL flush.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _deliver(alias, backend, rows, report: DrainReport) -> bool:
    """Send one backend its merged rows; mark them done, or record the failure. True if done."""
    if backend is None:
        _record_failure(rows, f"no CDN backend {alias!r} is configured", None, report, dead=True)
        return False
    tags = sorted({tag for row in rows for tag in row.tags})
    urls = sorted({url for row in rows for url in row.urls})
    try:
        if tags:
            backend.purge_tags(tags)
        if urls:
            backend.purge_urls(urls)
    except PurgeError as exc:
        logger.warning(
            "event=cdn_purge_failed backend=%s rows=%d tags=%d urls=%d error=%s",
            alias, len(rows), len(tags), len(urls), json.dumps(str(exc)),
        )
        _record_failure(rows, str(exc), exc.retry_after, report)
        return False
    pks = [row.pk for row in rows]
    PurgeOutbox.objects.filter(pk__in=pks).update(
        status=PurgeOutbox.Status.DONE, delivered_at=timezone.now(), attempts=F("attempts") + 1
    )
    CDN_PURGES.labels(backend=alias, result="ok").inc()
    logger.info("event=cdn_purge_delivered backend=%s rows=%d tags=%d urls=%d", alias, len(pks), len(tags), len(urls))
    report.delivered.extend(pks)
    return True


def _record_failure(rows, error, retry_after, report: DrainReport, *, dead=False) -> None:
    now = timezone.now()
    max_attempts = outbox_setting("MAX_ATTEMPTS")
    results = set()
    for row in rows:
        row.attempts += 1
        row.last_error = error[:2000]
        delay = max(retry_after or 0.0, backoff_seconds(row.attempts))
        row.next_attempt_at = now + timedelta(seconds=delay)
        if dead or (max_attempts and row.attempts >= max_attempts):
            row.status = PurgeOutbox.Status.DEAD
            report.dead.append(row.pk)
            results.add("dead")
        else:
            report.failed.append(row.pk)
            report.retry_in = delay if report.retry_in is None else min(report.retry_in, delay)
            results.add("error")
    PurgeOutbox.objects.bulk_update(rows, ["attempts", "last_error", "next_attempt_at", "status"])
    for result in results:  # one count per failed call (and per batch given up)
        CDN_PURGES.labels(backend=rows[0].backend, result=result).inc()


# --- Backlog and retention ------------------------------------------------------------------


def update_pending_gauge() -> int:
    """Set newsite_outbox_pending from the database (one COUNT on the partial index)."""
    count = PurgeOutbox.objects.filter(status=PurgeOutbox.Status.PENDING).count()
    OUTBOX_PENDING.set(count)
    return count


def outbox_backlog() -> dict:
    """For /health/cache/: {"pending": n, "dead": n, "oldest_pending_seconds": s or None}.

    Also sets newsite_outbox_pending. Costs one aggregate query (partial index for pending).
    """
    stats = PurgeOutbox.objects.filter(
        status__in=[PurgeOutbox.Status.PENDING, PurgeOutbox.Status.DEAD]
    ).aggregate(
        pending=Count("pk", filter=Q(status=PurgeOutbox.Status.PENDING)),
        dead=Count("pk", filter=Q(status=PurgeOutbox.Status.DEAD)),
        oldest=Min("created_at", filter=Q(status=PurgeOutbox.Status.PENDING)),
    )
    OUTBOX_PENDING.set(stats["pending"])
    oldest = stats["oldest"]
    return {
        "pending": stats["pending"],
        "dead": stats["dead"],
        "oldest_pending_seconds": round((timezone.now() - oldest).total_seconds(), 1) if oldest else None,
    }


def purge_again(ids) -> int:
    """The follow-up purge: send the tags and URLs of delivered rows `ids` to their backends
    once more (rows are not touched). Returns the backend calls made; a failure is logged and
    counted (result="follow_up_failed"), never retried."""
    backends = get_backends()
    by_backend: dict[str, list[PurgeOutbox]] = {}
    for row in PurgeOutbox.objects.filter(pk__in=list(ids), status=PurgeOutbox.Status.DONE):
        by_backend.setdefault(row.backend, []).append(row)
    calls = 0
    for alias, rows in sorted(by_backend.items()):
        backend = backends.get(alias)
        if backend is None:
            continue
        tags = sorted({tag for row in rows for tag in row.tags})
        urls = sorted({url for row in rows for url in row.urls})
        try:
            if tags:
                backend.purge_tags(tags)
            if urls:
                backend.purge_urls(urls)
        except PurgeError as exc:
            CDN_PURGES.labels(backend=alias, result="follow_up_failed").inc()
            logger.warning("event=cdn_follow_up_failed backend=%s error=%s", alias, json.dumps(str(exc)))
            continue
        CDN_PURGES.labels(backend=alias, result="follow_up").inc()
        calls += 1
    return calls


def prune_delivered(days: int | None = None) -> int:
    """Delete delivered rows older than `days` (RETAIN_DONE_DAYS). Returns how many."""
    days = outbox_setting("RETAIN_DONE_DAYS") if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = PurgeOutbox.objects.filter(status=PurgeOutbox.Status.DONE, created_at__lt=cutoff).delete()
    return deleted
