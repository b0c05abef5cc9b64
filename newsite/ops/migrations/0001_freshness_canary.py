from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="FreshnessCanary",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value", models.BigIntegerField(default=0)),
                ("written_at", models.DateTimeField(null=True)),
                ("committed_at", models.FloatField(null=True)),
                ("runs", models.BigIntegerField(default=0)),
                ("last_run_at", models.FloatField(null=True)),
                ("tiers", models.JSONField(default=dict)),
            ],
            options={"verbose_name": "freshness canary"},
        ),
    ]
