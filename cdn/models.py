"""The purge outbox: one row per invalidation per CDN backend, written in the writer's transaction."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class PurgeOutbox(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Delivered"
        DEAD = "dead", "Gave up"

    backend = models.CharField(max_length=64, help_text="Alias in settings.CDN_BACKENDS.")
    tags = models.JSONField(default=list, blank=True)
    urls = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "purge outbox row"
        verbose_name_plural = "purge outbox"
        ordering = ["-id"]
        indexes = [
            # The drain and the re-drive: pending rows of a backend that are due. Partial, so it
            # stays as small as the backlog however many delivered rows are kept.
            models.Index(
                fields=["backend", "next_attempt_at"],
                name="cdn_outbox_pending_due",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["status", "created_at"], name="cdn_outbox_status_created"),
        ]

    def __str__(self):
        return f"purge #{self.pk} via {self.backend} ({self.status})"
