"""Celery tasks of the purge outbox (thin: the logic is in cdn.outbox)."""

import logging

from celery import shared_task

from cdn import outbox

logger = logging.getLogger("cdn")

# Failed rows due sooner than this are re-sent by the drain itself; later ones by the re-drive.
SELF_RETRY_MAX_DELAY = 300


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
        outbox.schedule_drain(report.failed, countdown=report.retry_in)
    return {"delivered": len(report.delivered), "failed": len(report.failed), "dead": len(report.dead)}


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
