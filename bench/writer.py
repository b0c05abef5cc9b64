"""Django inside the harness process: the writer of the cold-key and freshness scenarios."""

import os

from bench.context import Context

_django_ready = False


def django_setup(ctx: Context) -> None:
    global _django_ready
    if _django_ready:
        return
    for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
                "CACHE_KEY_PREFIX", "VARNISH_PURGE_URL"):
        if key in ctx.env:
            os.environ[key] = ctx.env[key]
    os.environ["BENCH_MODE"] = "l1l2"
    import django

    django.setup()
    _django_ready = True


def new_cold_article(marker: str) -> int:
    """A new published article copied from an existing one: never requested, so cold in every tier."""
    from django.utils import timezone

    from articles.models import Article

    src = Article.objects.filter(status="published").order_by("id").first()
    art = Article.objects.create(
        title=f"bench cold {marker}", slug=f"bench-cold-{marker}", excerpt=src.excerpt, body=src.body,
        author_id=src.author_id, category_id=src.category_id, status="published",
        published_at=timezone.now() - timezone.timedelta(days=400), hero_image_url=src.hero_image_url,
    )
    return art.pk
