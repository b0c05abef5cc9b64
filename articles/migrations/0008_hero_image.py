from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("articles", "0007_names_without_control_characters"),
    ]

    operations = [
        migrations.AddField(
            model_name="article",
            name="hero_image",
            field=models.ImageField(
                blank=True,
                db_default="",
                help_text=(
                    "A JPEG, PNG or WebP picture, at least 640x360 pixels, at most 10 MB; shown 16:9 at the top of "
                    "the article, in sizes made once for phones and desktops (WebP with a JPEG fallback)."
                ),
                max_length=255,
                upload_to="",
            ),
        ),
        migrations.AddField(
            model_name="article",
            name="hero_renditions",
            field=models.JSONField(blank=True, db_default=[], default=list, editable=False),
        ),
    ]
