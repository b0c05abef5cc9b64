"""Celery tasks of the purge outbox, and sending the drain to the broker (the logic is in cdn.outbox)."""

import logging
from datetime import timedelta

import kombu.exceptions
import redis.exceptions
from celery import shared_task
from django.utils import timezone

from cdn import outbox

logger = logging.getLogger("cdn")

# Failed rows due sooner than this are re-sent by the drain itself; later ones by the re-drive.
SELF_RETRY_MAX_DELAY = 300

# What an unreachable broker raises from apply_async (AMQP/kombu, the Redis transport, sockets).
BROKER_ERRORS = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


@shared_task(bind=True, name="cdn.purge_outbox_drain", ignore_result=True)
def purge_outbox_drain(self, ids=None):
    """Deliver the given outbox rows (or every pending, due row); re-schedule failures with backoff.

    Eager runs (`make run` without a broker) leave failures to the re-drive: a countdown would
    run at once, again and again.
    """
    report = outbox.drain_outbox(ids)
    if (
        ids is not None
        and not self.request.is_eager
        and report.failed
        and report.retry_in is not None
        and report.retry_in <= SELF_RETRY_MAX_DELAY
    ):
        schedule_drain(report.failed, countdown=report.retry_in)
    if not self.request.is_eager:
        _schedule_follow_up(report.delivered)
    return {"delivered": len(report.delivered), "failed": len(report.failed), "dead": len(report.dead)}


def _schedule_follow_up(delivered: list[int]) -> None:
    """purge_outbox_follow_up(delivered), FOLLOW_UP_AFTER from now (best effort: the first purge
    was delivered)."""
    follow_up = outbox.outbox_setting("FOLLOW_UP_AFTER")
    if not delivered or not follow_up:
        return
    try:
        purge_outbox_follow_up.apply_async(args=(delivered,), countdown=follow_up, retry=False)
    except BROKER_ERRORS as exc:
        logger.warning("cdn outbox: follow-up purge of %s not scheduled (%s)", delivered, exc)


@shared_task(name="cdn.purge_outbox_follow_up", ignore_result=True)
def purge_outbox_follow_up(ids):
    """Purge what rows `ids` purged once more (cdn.outbox.purge_again), FOLLOW_UP_AFTER later."""
    return outbox.purge_again(ids)


@shared_task(bind=True, name="cdn.purge_outbox_redrive", ignore_result=True)
def purge_outbox_redrive(self):
    """Beat (every CDN_OUTBOX_REDRIVE_SECONDS, 1 s): deliver whatever is pending, due and at
    least REDRIVE_AFTER old - left by a writer cut off from Redis and the broker as it committed,
    a broker outage, a killed worker, a CDN error. Its app tiers first (cdn.outbox), then the
    purge, then the follow-up purge as a drain would."""
    created_before = timezone.now() - timedelta(seconds=outbox.outbox_setting("REDRIVE_AFTER"))
    report = outbox.drain_outbox(None, created_before=created_before)
    if not (self.request.is_eager or self.request.called_directly):
        _schedule_follow_up(report.delivered)
    if report.delivered or report.failed or report.dead:
        logger.info(
            "cdn outbox re-drive: %d delivered, %d failed, %d dead",
            len(report.delivered),
            len(report.failed),
            len(report.dead),
        )
    return {"delivered": len(report.delivered), "failed": len(report.failed), "dead": len(report.dead)}


@shared_task(name="cdn.purge_outbox_prune", ignore_result=True)
def purge_outbox_prune():
    """Beat: delete delivered rows past the retention window."""
    return outbox.prune_delivered()


def schedule_drain(ids=None, *, countdown: float | None = None) -> bool:
    """Send purge_outbox_drain(ids) to the broker. False (logged) if the broker is unreachable:
    the rows stay pending for the re-drive."""
    try:
        purge_outbox_drain.apply_async(
            args=(list(ids),) if ids is not None else (),
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        )
    except BROKER_ERRORS as exc:
        logger.warning("cdn outbox: broker unreachable (%s); rows %s stay pending for the re-drive", exc, ids)
        return False
    return True
