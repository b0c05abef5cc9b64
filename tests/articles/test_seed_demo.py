"""seed_demo on real PostgreSQL with a small N: shape, determinism, COPY side effects, --if-empty."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.postgres.search import SearchQuery
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count, Max
from django.utils import timezone

from articles.models import Article, Author, Category, Comment, Follow, Like

N = 60

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # seed_demo hashes two passwords per run; PBKDF2 would dominate these small runs.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, verbosity=0 if "--if-empty" not in args else 1, stdout=out)
    return out.getvalue()


def snapshot() -> list[tuple]:
    """Everything the seed decides, with dates as offsets from the newest one (the anchor moves)."""
    newest = Article.objects.aggregate(m=Max("created_at"))["m"]
    rows = Article.objects.order_by("id").values_list(
        "title", "slug", "author__name", "category__slug", "status", "is_breaking", "view_count",
        "created_at", "published_at",
    )
    return [(*row[:7], newest - row[7], row[8] and newest - row[8]) for row in rows]


def test_seed_shape_counts_and_ranges():
    seed("--articles", str(N))
    user_model = get_user_model()

    assert Category.objects.count() == 12
    assert set(Category.objects.values_list("slug", flat=True)) >= {"world", "politics", "technology", "climate"}
    assert Author.objects.count() == 5 + 1  # min 5 authors, plus demo-editor's profile
    assert user_model.objects.filter(username__startswith="reader-").count() == 50
    assert not Author.objects.filter(bio="").exists()
    assert not Author.objects.filter(avatar_url="").exists()

    assert Article.objects.count() == N
    published = Article.objects.filter(status=Article.Status.PUBLISHED)
    drafts = Article.objects.filter(status=Article.Status.DRAFT)
    assert 50 <= published.count() < N
    assert drafts.count() >= 1
    assert not drafts.exclude(published_at=None).exists()
    assert not published.filter(published_at=None).exists()
    now = timezone.now()
    assert not Article.objects.filter(published_at__gt=now).exists()
    assert not published.filter(published_at__lt=now - timedelta(days=366)).exists()
    assert set(Article.objects.values_list("version", flat=True)) == {1}
    assert len(set(Article.objects.values_list("slug", flat=True))) == N
    assert not Article.objects.filter(excerpt="").exists()
    # Hero images drawn locally, a few shared by all (issue 32: nothing from another site).
    assert set(Article.objects.values_list("hero_image_url", flat=True)) == {""}
    heroes = set(Article.objects.values_list("hero_image", flat=True))
    assert 3 <= len(heroes) <= 36 and "" not in heroes
    for renditions in Article.objects.values_list("hero_renditions", flat=True).distinct()[:3]:
        assert {(r["width"], r["type"]) for r in renditions} == {
            (w, t) for w in (400, 800, 1200) for t in ("image/webp", "image/jpeg")}
        assert all(default_storage.exists(r["name"]) for r in renditions)
    body_lengths = [len(b) for b in Article.objects.values_list("body", flat=True)]
    assert 800 <= sum(body_lengths) / N <= 2500
    assert all("\n\n" in b for b in Article.objects.values_list("body", flat=True)[:5])

    recent = published.filter(published_at__gte=now - timedelta(hours=6))
    assert recent.count() >= 5
    assert recent.filter(is_breaking=True).count() >= 2
    assert not Article.objects.filter(is_breaking=True, published_at__lt=now - timedelta(hours=6)).exists()

    views = list(published.order_by("-view_count").values_list("view_count", flat=True))
    assert views[0] > 5 * views[len(views) // 2] > 0  # skewed, Zipf-like
    assert not drafts.exclude(view_count=0).exists()

    comments, likes = Comment.objects.count(), Like.objects.count()
    assert 6 * N <= comments <= 14 * N
    assert 6 * N <= likes <= 14 * N
    assert not Comment.objects.filter(article__status=Article.Status.DRAFT).exists()
    assert not Like.objects.filter(article__status=Article.Status.DRAFT).exists()
    per_article = list(Article.objects.annotate(c=Count("comments")).order_by("-c").values_list("c", flat=True))
    assert per_article[0] > 3 * per_article[len(per_article) // 2]
    assert Like.objects.values("article_id", "user_id").distinct().count() == likes
    assert Follow.objects.exists()


def test_search_vector_is_filled_by_the_trigger():
    seed("--articles", str(N))
    assert not Article.objects.filter(search_vector=None).exists()
    word = Article.objects.order_by("id").values_list("title", flat=True)[0].split()[-1]
    assert Article.objects.filter(search_vector=SearchQuery(word, config="english")).exists()


def test_demo_accounts_can_log_in():
    seed("--articles", str(N), "--demo-accounts")  # `make run` only (deploy/scripts/run-dev.sh)
    editor = authenticate(username="demo-editor", password="demo-editor")
    assert editor is not None and editor.is_staff and editor.is_superuser
    assert Author.objects.filter(user=editor).exists()
    reader = authenticate(username="demo-reader", password="demo-reader")
    assert reader is not None and not reader.is_staff
    # Seeded readers share demo-reader's precomputed hash.
    assert authenticate(username="reader-00007", password="demo-reader") is not None


def test_sequences_are_reset_so_orm_inserts_work():
    seed("--articles", str(N))
    user_model = get_user_model()
    user = user_model.objects.create(username="after-seed")
    category = Category.objects.create(name="Local", slug="local")
    author = Author.objects.create(user=user, name="After Seed")
    article = Article.objects.create(
        title="Written after seeding", slug="written-after-seeding", author=author, category=category
    )
    assert article.pk > Article.objects.exclude(pk=article.pk).aggregate(m=Max("id"))["m"]
    Comment.objects.create(article=article, user=user, body="first")
    Like.objects.create(article=article, user=user)
    Follow.objects.create(user=user, category=category)


def test_same_seed_same_data_other_seed_other_data():
    seed("--articles", str(N))
    first = snapshot()
    first_comments = Comment.objects.count()
    seed("--articles", str(N), "--flush")
    assert snapshot() == first
    assert Comment.objects.count() == first_comments
    assert get_user_model().objects.filter(username="demo-editor").count() == 1  # staff survives --flush
    seed("--articles", str(N), "--flush", "--seed", "7")
    other = snapshot()
    assert [row[1] for row in other] != [row[1] for row in first]
    assert Article.objects.count() == N


def test_if_empty_is_a_noop_on_a_seeded_database():
    seed("--articles", str(N))
    before = (Article.objects.count(), Comment.objects.count(), Like.objects.count())
    out = seed("--articles", "500", "--if-empty")
    assert "nothing to do" in out
    assert (Article.objects.count(), Comment.objects.count(), Like.objects.count()) == before


def test_if_empty_seeds_an_empty_database():
    out = seed("--articles", "20", "--if-empty")
    assert "20 articles" in out
    assert Article.objects.count() == 20


def test_refuses_to_append_without_flush():
    seed("--articles", "20")
    with pytest.raises(CommandError, match="--flush"):
        seed("--articles", "20")
    assert Article.objects.count() == 20


def test_rejects_a_bad_count():
    with pytest.raises(CommandError):
        seed("--articles", "0")


def test_analyze_ran_on_postgresql():
    seed("--articles", "20")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [Article._meta.db_table])
        assert cursor.fetchone()[0] == 20
