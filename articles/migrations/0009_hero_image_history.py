from django.db import migrations, models


class Migration(migrations.Migration):
    """Joins the hero image (issue 32, 0008_hero_image) and the editor's desk (issue 33,
    0008_article_history_corrections): an article's revisions keep its hero image too."""

    dependencies = [
        ("articles", "0008_article_history_corrections"),
        ("articles", "0008_hero_image"),
    ]

    operations = [
        migrations.AddField(
            model_name="historicalarticle",
            name="hero_image",
            field=models.TextField(
                blank=True,
                db_default="",
                help_text=(
                    "A JPEG, PNG or WebP picture, at least 640x360 pixels, at most 10 MB; shown 16:9 at the top of "
                    "the article, in sizes made once for phones and desktops (WebP with a JPEG fallback)."
                ),
                max_length=255,
            ),
        ),
        migrations.AddField(
            model_name="historicalarticle",
            name="hero_renditions",
            field=models.JSONField(blank=True, db_default=[], default=list, editable=False),
        ),
    ]
