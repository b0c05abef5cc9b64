"""The freshness canary's row (newsite/ops/canary.py): one row, pk 1.

`value` grows by one per canary write; `written_at` is when that write happened (inside its
transaction). `tiers` is what the last run saw, per tier: {"l2": {"value", "confirmed_at",
"seconds", "checked_at", "error"}, "l1": {..., "pids"}, "edge": {...}}; `confirmed_at` (epoch s)
is the commit time of the newest canary value the tier was seen serving (or not holding an
older one), so now - confirmed_at is how stale a reader of that tier can be.
"""

from django.db import models


class FreshnessCanary(models.Model):
    value = models.BigIntegerField(default=0)
    written_at = models.DateTimeField(null=True)
    committed_at = models.FloatField(null=True)  # epoch s of the last write's commit
    runs = models.BigIntegerField(default=0)
    last_run_at = models.FloatField(null=True)  # epoch s the last run finished
    tiers = models.JSONField(default=dict)

    class Meta:
        verbose_name = "freshness canary"

    def __str__(self):
        return f"canary {self.value}"
