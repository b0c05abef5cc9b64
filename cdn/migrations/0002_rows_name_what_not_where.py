"""Outbox rows stop naming a backend (issue 15.3): delivery goes to the backends configured where
it runs, and `delivered_to` records which of them confirmed a row.

Existing rows: a delivered row was delivered to its backend; a pending or dead row starts with
none (it is purged from every configured backend: purges are idempotent).
"""

from django.db import migrations, models
from django.db.models import Q


def forwards(apps, schema_editor):
    PurgeOutbox = apps.get_model("cdn", "PurgeOutbox")
    # order_by(): the model's default ordering would make distinct() return one alias per row
    # (and this loop quadratic: minutes for a few thousand rows).
    for alias in PurgeOutbox.objects.filter(status="done").order_by().values_list("backend", flat=True).distinct():
        PurgeOutbox.objects.filter(status="done", backend=alias).update(delivered_to=[alias])


def backwards(apps, schema_editor):
    PurgeOutbox = apps.get_model("cdn", "PurgeOutbox")
    for row in PurgeOutbox.objects.exclude(delivered_to=[]).only("pk", "delivered_to"):
        PurgeOutbox.objects.filter(pk=row.pk).update(backend=row.delivered_to[0])


class Migration(migrations.Migration):

    dependencies = [
        ("cdn", "0001_purge_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="purgeoutbox",
            name="delivered_to",
            field=models.JSONField(
                blank=True, default=list, help_text="Aliases in settings.CDN_BACKENDS that confirmed this purge."
            ),
        ),
        migrations.RunPython(forwards, backwards, elidable=True),
        migrations.RemoveIndex(model_name="purgeoutbox", name="cdn_outbox_pending_due"),
        migrations.AlterField(
            model_name="purgeoutbox",
            name="backend",
            field=models.CharField(default="default", help_text="Alias in settings.CDN_BACKENDS.", max_length=64),
        ),
        migrations.RemoveField(model_name="purgeoutbox", name="backend"),
        migrations.AddIndex(
            model_name="purgeoutbox",
            index=models.Index(
                condition=Q(status="pending"), fields=["next_attempt_at"], name="cdn_outbox_pending_next"
            ),
        ),
    ]
