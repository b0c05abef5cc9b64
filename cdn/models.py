"""The purge outbox: one row per transaction that invalidated something, written in that transaction.

A row names what to purge (tags, URLs), not where: the CDN backends configured where it is
delivered decide that (a writer's environment, e.g. a manage.py shell without VARNISH_PURGE_URL,
does not). `delivered_to` records the backends that confirmed it; it is done when every backend
configured at delivery time has.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class PurgeOutbox(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Delivered"
        DEAD = "dead", "Gave up"

    tags = models.JSONField(default=list, blank=True)
    urls = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivered_to = models.JSONField(
        default=list, blank=True, help_text="Aliases in settings.CDN_BACKENDS that confirmed this purge."
    )

    class Meta:
        verbose_name = "purge outbox row"
        verbose_name_plural = "purge outbox"
        ordering = ["-id"]
        indexes = [
            # The drain and the re-drive: pending rows that are due. Partial, so it stays as
            # small as the backlog however many delivered rows are kept.
            models.Index(
                fields=["next_attempt_at"],
                name="cdn_outbox_pending_next",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["status", "created_at"], name="cdn_outbox_status_created"),
        ]

    def __str__(self):
        return f"purge #{self.pk} ({self.status})"
