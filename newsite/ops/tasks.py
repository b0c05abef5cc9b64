"""Celery tasks of newsite.ops: the freshness canary (the logic is newsite.ops.canary)."""

from celery import shared_task

from newsite.ops import canary


@shared_task(name="ops.freshness_canary", ignore_result=True)
def freshness_canary():
    """Beat, every FRESHNESS_CANARY_EVERY seconds: write the canary, read it back from every tier."""
    return canary.run()
