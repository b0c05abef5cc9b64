"""Background work: warm_cache, write-behind view counts, trending."""

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.models import Sum
from django.test import Client

from articles import counters, keys, warm
from articles.models import Article, ViewCountFlush
from caching import engine
from tests.factories import make_article, make_author, make_category

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    author = make_author()
    cats = [make_category(name=n) for n in ("World", "Sports")]
    articles = [make_article(author=author, category=cats[i % 2], ago=timedelta(minutes=i + 1)) for i in range(30)]
    make_article(author=author, category=cats[0], is_breaking=True, title="Breaking now")
    return {"articles": articles, "cats": cats}


def test_warm_cache_fills_what_readers_ask_first(site, settings, django_assert_num_queries):
    settings.WARM_CACHE_TOP_ARTICLES = 5
    paths = warm.warm_paths()
    assert "/api/articles/?page=5" in paths and "/api/breaking-news/" in paths and "/api/articles/trending/" in paths
    assert sum(p.startswith("/api/articles/") and p.rstrip("/").split("/")[-1].isdigit() for p in paths) == 5
    call_command("warm_cache", verbosity=0)
    report = warm.last_run()
    assert report["paths"] == len(paths) and report["by_source"] == {"MISS": len(paths)}
    client = Client()
    for path in paths:
        with django_assert_num_queries(0):
            response = client.get(path)
        assert response["X-Cache"].startswith("HIT"), path


def test_view_posts_are_write_behind(site):
    article = site["articles"][0]
    client = Client()
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):  # three readers (each counts once)
        assert client.post(f"/api/articles/{article.id}/views/", REMOTE_ADDR=address).status_code == 204
    article.refresh_from_db()
    assert article.view_count == 0  # not yet flushed
    assert counters.flush_view_counts() == 3
    article.refresh_from_db()
    assert article.view_count == 3
    assert counters.flush_view_counts() == 0


def test_crash_after_move_aside_applies_once(site):
    article = site["articles"][0]
    for _ in range(5):
        counters.record_view(article_id=article.id)
    batch = counters.move_aside()  # ... and the flush dies here
    counters.record_view(article_id=article.id)  # new reads keep arriving meanwhile
    assert counters.flush_view_counts() == 5  # the stranded batch first
    assert counters.flush_view_counts() == 1
    article.refresh_from_db()
    assert article.view_count == 6
    assert ViewCountFlush.objects.filter(batch_id=batch).exists()


def test_crash_after_commit_before_drop_applies_once(site):
    article = site["articles"][0]
    for _ in range(4):
        counters.record_view(article_id=article.id)
    batch = counters.move_aside()
    assert counters.apply_batch(batch) == 4  # committed, and the flush dies before dropping
    assert counters.flush_view_counts() == 0  # finds the batch recorded: drops it only
    article.refresh_from_db()
    assert article.view_count == 4
    assert not engine.redis_client().exists(keys.views_processing_key())


def test_a_stale_flush_never_drops_another_batch(site):
    article = site["articles"][0]
    counters.record_view(article_id=article.id)
    first = counters.move_aside()
    assert counters.apply_batch(first) == 1
    counters.drop_batch(first)
    for _ in range(2):
        counters.record_view(article_id=article.id)
    second = counters.move_aside()
    # A slow flush still holding the first batch id wakes up: it must neither apply nor drop the second.
    assert counters.apply_batch(first) == 0
    counters.drop_batch(first)
    assert counters.apply_batch(second) == 2
    counters.drop_batch(second)
    article.refresh_from_db()
    assert article.view_count == 3


def test_view_counter_404s_leave_nothing_in_redis(site):
    """Random ids are answered from a negative in L1 (issue 16.3): no Redis key survives them
    but the doorkeeper's fixed-size bitmap (first sights of 404 keys)."""
    client = Client()
    redis = engine.redis_client()
    keys_before = set(redis.scan_iter(match="*"))  # test-only lookup
    assert client.post("/api/articles/987654/views/").status_code == 404
    assert client.post("/api/articles/987654/views/").status_code == 404
    assert list(redis.scan_iter(match="*article_published:987654*")) == []
    added = {k.decode() for k in set(redis.scan_iter(match="*")) - keys_before}
    assert all(":door:" in k for k in added), added


def test_trending_follows_the_counts(site):
    a, b, c = site["articles"][:3]
    for article, reads in ((a, 2), (b, 7), (c, 4)):
        for _ in range(reads):
            counters.record_view(article_id=article.id)
    body = Client().get("/api/articles/trending/").json()
    assert [x["id"] for x in body["results"]][:3] == [b.id, c.id, a.id]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ten_thousand_concurrent_views_with_interleaved_flushes():
    articles = [make_article(ago=timedelta(minutes=i + 1)) for i in range(5)]
    before = Article.objects.aggregate(total=Sum("view_count"))["total"]
    stop = threading.Event()
    errors = []

    def reader(t: int, n: int):
        client = Client()
        try:
            for i in range(n):  # each read from its own client (a client's reads of one article count once)
                address = f"10.{t}.{i // 250}.{i % 250}"
                assert client.post(f"/api/articles/{articles[i % 5].id}/views/", REMOTE_ADDR=address).status_code == 204
        except AssertionError as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def flusher():
        try:
            while not stop.is_set():
                counters.flush_view_counts()
                stop.wait(0.05)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reader, args=(t, 1250)) for t in range(8)]
    flush_thread = threading.Thread(target=flusher)
    flush_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    flush_thread.join()
    counters.flush_view_counts()
    assert not errors
    after = Article.objects.aggregate(total=Sum("view_count"))["total"]
    assert after - before == 10_000
