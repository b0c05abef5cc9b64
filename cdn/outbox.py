"""The purge outbox rows after they are written: drain them, back off, report the backlog, prune.

Guarantees (docs/cdn.md): a row is delivered at least once to every backend configured where
the drain runs (purges are idempotent); a broker or CDN outage only delays it. Rows record attempts, last error and when they
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
from django.db.models import Count, Min, Q
from django.utils import timezone

from caching.invalidation import invalidate_app_tiers
from caching.l2 import L2Unavailable
from caching.metrics import INVALIDATION_LAG
from cdn.backends import PurgeError, get_backends
from cdn.metrics import CDN_PURGES, OUTBOX_PENDING
from cdn.models import PurgeOutbox

logger = logging.getLogger("cdn")

DEFAULTS = {
    "BATCH_SIZE": 200,  # rows locked and merged per drain transaction
    "BACKOFF_BASE": 2.0,  # seconds before the 2nd attempt; doubles each time
    "BACKOFF_MAX": 600.0,  # cap between attempts
    "MAX_ATTEMPTS": 50,  # then the row is marked dead (still in the admin, can be retried); 0 = never
    "RETAIN_DONE_DAYS": 7,  # delivered rows older than this are pruned
    # A second purge of what a drain delivered, this many seconds later (0: none). It removes
    # what an edge stored after the first purge from a fetch that was already in flight (a
    # response built before the write, delivered after the purge): the cover for Fastly and
    # Cloudflare. deploy/varnish/default.vcl re-fetches such a response itself, so rows the
    # writer delivered to Varnish (cdn/edge_ack.py) get none. Best effort: the first purge is
    # the durable one.
    "FOLLOW_UP_AFTER": 0.5,
    # Seconds a write waits, in all, for the edges that acknowledge (Varnish nodes) to confirm
    # its purge before it returns (cdn/edge_ack.py); past it, or on any error, the row is left
    # to the drain, counted. 0: no wait, every purge goes through the drain.
    "EDGE_ACK_WAIT": 0.15,
    # {tag prefix: seconds}: a purge whose every tag has a prefix here waits up to that long
    # (the shortest of its tags') and is merged with the same purge asked for meanwhile, so a
    # burst of identical asks (likes on a hot article: its counts) costs one purge per window.
    "COALESCE": {},
    # The re-drive (Celery beat, CDN_OUTBOX_REDRIVE_SECONDS apart: 1 s) takes the pending, due
    # rows created at least this long ago: the writer's own hand-off (edge acknowledgement, the
    # drain task) has had its chance by then. A row whose writer could reach neither Redis nor
    # the broker - its host cut off as it committed - thus has its app tiers invalidated and its
    # purge sent by the Celery host within about REDRIVE_AFTER + the beat's period of the commit.
    "REDRIVE_AFTER": 1.0,
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


def drain_outbox(ids=None, *, created_before=None) -> DrainReport:
    """Deliver pending, due rows (only `ids` if given; only rows created before `created_before`
    if given) to every configured backend that has not confirmed them yet, merged, in batches of
    BATCH_SIZE rows.

    The configured backends of this process decide where a row goes (a row names no backend):
    a row is done once every one of them has confirmed it (`delivered_to`). Each batch is one
    transaction: SELECT ... FOR UPDATE SKIP LOCKED (so concurrent drains never deliver the same
    row twice and never wait for each other), the app tiers, one provider round per backend, one
    UPDATE. The locks are held during the provider calls (bounded by the backends' timeouts). A
    backend that fails is not called again in this run (its rows back off). Costs 3 queries for
    a small drain, plus a COUNT for the pending gauge when something failed or on a re-drive.
    """
    report = DrainReport()
    backends = get_backends()
    batch_size = outbox_setting("BATCH_SIZE")
    failed_backends: dict[str, PurgeError] = {}
    after_pk = 0
    while True:
        with transaction.atomic():
            _relax_commit_durability()
            qs = PurgeOutbox.objects.select_for_update(skip_locked=True).filter(
                status=PurgeOutbox.Status.PENDING, next_attempt_at__lte=timezone.now(), pk__gt=after_pk
            )
            if ids is not None:
                qs = qs.filter(pk__in=list(ids))
            if created_before is not None:
                qs = qs.filter(created_at__lt=created_before)
            rows = list(qs.order_by("pk")[:batch_size])
            if not rows:
                break
            after_pk = rows[-1].pk
            if not _app_tiers_first(rows, report):
                break
            _deliver_batch(rows, backends, failed_backends, report)
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
        _record_failure(rows, {row.pk: f"app tiers not invalidated: {exc}" for row in rows}, None, report)
        PurgeOutbox.objects.bulk_update(rows, ["attempts", "last_error", "next_attempt_at", "status"])
        return False
    return True


def _relax_commit_durability() -> None:
    # Losing a "done" mark in a database crash only means one more (idempotent) delivery, so the
    # drain's commits need not wait for the WAL flush.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _deliver_batch(rows, backends, failed_backends: dict[str, PurgeError], report: DrainReport) -> None:
    """Send each configured backend the merged tags and URLs of the rows it has not confirmed;
    record who confirmed what; mark rows done, or back them off. One UPDATE."""
    errors: dict[int, str] = {}
    failed_here: set[str] = set()
    retry_after = None
    for alias, backend in sorted(backends.items()):
        todo = [row for row in rows if alias not in row.delivered_to]
        if not todo:
            continue
        exc = failed_backends.get(alias) or _deliver(alias, backend, todo)
        if exc is not None and exc.refused:
            # The provider took everything but these items, even one by one: the rows without
            # them are delivered; the others keep failing alone, never in a merged batch again.
            refused = [row for row in todo if exc.refused & {*row.tags, *row.urls}]
            for row in todo:
                if row not in refused:
                    row.delivered_to = sorted({*row.delivered_to, alias})
            for row in refused:
                errors[row.pk] = errors.get(row.pk, "") + f"{alias}: {exc}\n"
            failed_here.add(alias)
            continue
        if exc is None:
            for row in todo:
                row.delivered_to = sorted({*row.delivered_to, alias})
            continue
        failed_backends[alias] = exc
        failed_here.add(alias)
        retry_after = max(retry_after or 0.0, exc.retry_after or 0.0) or None
        for row in todo:
            errors[row.pk] = errors.get(row.pk, "") + f"{alias}: {exc}\n"
    now = timezone.now()
    done = [row for row in rows if row.pk not in errors]
    for row in done:
        row.status = PurgeOutbox.Status.DONE
        row.delivered_at = now
        row.attempts += 1
        report.delivered.append(row.pk)
    dead_before = len(report.dead)
    _record_failure([row for row in rows if row.pk in errors], errors, retry_after, report)
    if len(report.dead) > dead_before:
        for alias in failed_here:
            CDN_PURGES.labels(backend=alias, result="dead").inc()
    PurgeOutbox.objects.bulk_update(
        rows, ["delivered_to", "status", "delivered_at", "attempts", "last_error", "next_attempt_at"]
    )


def _send(backend, rows) -> tuple[list, list]:
    """Purge the merged tags and URLs of `rows` at `backend` (PurgeError if it refuses).
    Returns (tags, urls)."""
    tags = sorted({tag for row in rows for tag in row.tags})
    urls = sorted({url for row in rows for url in row.urls})
    if tags:
        backend.purge_tags(tags)
    if urls:
        backend.purge_urls(urls)
    return tags, urls


def _deliver(alias, backend, rows) -> PurgeError | None:
    """Send one backend the merged rows. None if it confirmed, else the error."""
    try:
        tags, urls = _send(backend, rows)
    except PurgeError as exc:
        tags = {tag for row in rows for tag in row.tags}
        urls = {url for row in rows for url in row.urls}
        logger.warning(
            "event=cdn_purge_failed backend=%s rows=%d tags=%d urls=%d error=%s",
            alias, len(rows), len(tags), len(urls), json.dumps(str(exc)),
        )
        CDN_PURGES.labels(backend=alias, result="error").inc()
        return exc
    CDN_PURGES.labels(backend=alias, result="ok").inc()
    now = timezone.now()
    lag = INVALIDATION_LAG.labels("cdn")  # the row is written in the writer's transaction: ~ its commit
    for row in rows:
        lag.observe(max(0.0, (now - row.created_at).total_seconds()))
    logger.info("event=cdn_purge_delivered backend=%s rows=%d tags=%d urls=%d", alias, len(rows), len(tags), len(urls))
    return None


def _record_failure(rows, errors: dict[int, str], retry_after, report: DrainReport) -> None:
    """Back the rows off (attempts + 1), or mark them dead past MAX_ATTEMPTS (not saved here)."""
    now = timezone.now()
    max_attempts = outbox_setting("MAX_ATTEMPTS")
    for row in rows:
        row.attempts += 1
        row.last_error = errors[row.pk].strip()[:2000]
        delay = max(retry_after or 0.0, backoff_seconds(row.attempts))
        row.next_attempt_at = now + timedelta(seconds=delay)
        if max_attempts and row.attempts >= max_attempts:
            row.status = PurgeOutbox.Status.DEAD
            report.dead.append(row.pk)
            logger.error("event=cdn_purge_dead row=%d attempts=%d error=%s", row.pk, row.attempts, json.dumps(row.last_error))
        else:
            report.failed.append(row.pk)
            report.retry_in = delay if report.retry_in is None else min(report.retry_in, delay)


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
    """The follow-up purge: send the tags and URLs of delivered rows `ids` to the backends that
    confirmed them once more (rows are not touched). Returns the backend calls made; a failure is
    logged and counted (result="follow_up_failed"), never retried."""
    backends = get_backends()
    rows = list(PurgeOutbox.objects.filter(pk__in=list(ids), status=PurgeOutbox.Status.DONE))
    calls = 0
    for alias, backend in sorted(backends.items()):
        mine = [row for row in rows if alias in row.delivered_to]
        if not any(row.tags or row.urls for row in mine):
            continue
        try:
            _send(backend, mine)
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
