"""Celery tasks of the purge outbox, and sending the drain to the broker (the logic is in cdn.outbox)."""

import logging

import kombu.exceptions
import redis.exceptions
from celery import shared_task

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
    follow_up = outbox.outbox_setting("FOLLOW_UP_AFTER")
    if report.delivered and follow_up and not self.request.is_eager:
        try:
            purge_outbox_follow_up.apply_async(args=(report.delivered,), countdown=follow_up, retry=False)
        except BROKER_ERRORS as exc:  # best effort: the first purge was delivered
            logger.warning("cdn outbox: follow-up purge of %s not scheduled (%s)", report.delivered, exc)
    return {"delivered": len(report.delivered), "failed": len(report.failed), "dead": len(report.dead)}


@shared_task(name="cdn.purge_outbox_follow_up", ignore_result=True)
def purge_outbox_follow_up(ids):
    """Purge what rows `ids` purged once more (cdn.outbox.purge_again), FOLLOW_UP_AFTER later."""
    return outbox.purge_again(ids)


@shared_task(name="cdn.purge_outbox_redrive", ignore_result=True)
def purge_outbox_redrive():
    """Beat: deliver whatever is pending and due (broker was down, worker died, CDN failed)."""
    report = outbox.drain_outbox(None)
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
