"""Public responses through the tiers: hits run zero queries, carry the SPEC headers, answer
conditional requests with 304, ignore unknown parameters and never hold anything personal."""

import random
import string
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings

from articles.models import Comment, Like
from caching import engine, fetcher
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    cat = make_category(name="World")
    author = make_author(name="Ada Writer")
    article = make_article(author=author, category=cat, title="Cached story", ago=timedelta(minutes=5))
    make_article(author=author, category=cat, title="Breaking story", is_breaking=True, ago=timedelta(minutes=1))
    Comment.objects.create(article=article, user=make_user(), body="First")
    Like.objects.create(article=article, user=make_user())
    return {"cat": cat, "author": author, "article": article}


def public_paths(world):
    a, c, au = world["article"], world["cat"], world["author"]
    return {
        "/api/articles/?page=1": {"articles", "feed:home", f"article:{a.id}"},
        f"/api/articles/{a.id}/": {f"article:{a.id}", f"author:{au.id}", f"category:{c.id}"},
        "/api/articles/trending/": {"trending", f"article:{a.id}"},
        "/api/breaking-news/": {"breaking"},
        "/api/categories/": {"categories", f"category:{c.id}"},
        f"/api/categories/{c.slug}/articles/": {f"category:{c.id}", f"feed:category:{c.id}", f"article:{a.id}"},
        f"/api/authors/{au.id}/": {f"author:{au.id}"},
        f"/api/authors/{au.id}/articles/": {f"author:{au.id}", f"article:{a.id}"},
        "/api/search/?q=cached": {"search", f"article:{a.id}"},
        "/": {"feed:home", "breaking", f"article:{a.id}"},
        f"/articles/{a.slug}/": {f"article:{a.id}", f"author:{au.id}", f"category:{c.id}"},
        f"/category/{c.slug}/": {f"category:{c.id}", f"feed:category:{c.id}", f"article:{a.id}"},
    }


def test_every_public_endpoint_second_request_is_a_hit_with_zero_queries(world, django_assert_num_queries, make_client):
    client = make_client()
    for path, expected_tags in public_paths(world).items():
        first = client.get(path)
        assert first.status_code == 200, path
        assert first["X-Cache"] == "MISS", path
        front = getattr(client, "front", None)
        served = front.served if front else 0
        with django_assert_num_queries(0):
            second = client.get(path)
        assert second.status_code == 200 and second.content == first.content, path
        assert second["X-Cache"] in ("HIT-L1", "HIT-L2"), path
        if front is not None:
            assert front.served == served + 1, f"{path}: the front did not answer the L1 hit"
        cache_control = second["Cache-Control"]
        assert cache_control.startswith("public, max-age="), path
        assert "s-maxage=" in cache_control, path
        tags = set(second["Surrogate-Key"].split(" "))
        assert expected_tags <= tags, (path, tags)
        assert set(second["Cache-Tag"].split(",")) == tags, path
        assert second["ETag"].startswith('"') and second["Vary"] == "Accept-Encoding", path
        assert int(second["Age"]) >= 0, path
        with django_assert_num_queries(0):
            not_modified = client.get(path, HTTP_IF_NONE_MATCH=second["ETag"])
        assert not_modified.status_code == 304 and not_modified.content == b"", path


def test_l2_hit_after_l1_is_cleared(world, django_assert_num_queries, make_client):
    client = make_client()
    path = f"/api/articles/{world['article'].id}/"
    client.get(path)
    fetcher.clear_local()
    with django_assert_num_queries(0):
        response = client.get(path)
    assert response["X-Cache"] == "HIT-L2"


def test_cache_control_per_kind(world, make_client):
    client = make_client()
    detail = client.get(f"/api/articles/{world['article'].id}/")
    assert detail["Cache-Control"] == "public, max-age=60, s-maxage=3600, stale-while-revalidate=60, stale-if-error=86400"
    breaking = client.get("/api/breaking-news/")
    assert breaking["Cache-Control"].startswith("public, max-age=0, s-maxage=30")


def test_last_modified_and_if_modified_since(world, make_client):
    client = make_client()
    response = client.get(f"/api/articles/{world['article'].id}/")
    assert response["Last-Modified"].endswith("GMT")
    again = client.get(f"/api/articles/{world['article'].id}/", HTTP_IF_MODIFIED_SINCE=response["Last-Modified"])
    assert again.status_code == 304


def test_public_404_is_a_short_tagged_negative(world, django_assert_num_queries, make_client):
    client = make_client()
    first = client.get("/api/articles/987654/")
    assert first.status_code == 404 and first["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        second = client.get("/api/articles/987654/")
    assert second.status_code == 404 and second["X-Cache"].startswith("HIT")
    assert second["Cache-Control"] == "public, max-age=30, s-maxage=30"
    assert second["Surrogate-Key"] == "article:987654"
    assert second.json()["error"] == "not_found"


def test_bad_parameters_are_400_and_not_cached(world, make_client):
    client = make_client()
    redis = engine.redis_client()
    before = redis.dbsize()
    for _ in range(2):
        response = client.get("/api/articles/?page=abc")
        assert response.status_code == 400 and "X-Cache" not in response
    assert redis.dbsize() == before


def test_unknown_parameters_create_no_entries(world, make_client):
    client = make_client()
    client.get("/api/articles/?page=1")
    client.get(f"/api/articles/{world['article'].id}/")
    redis = engine.redis_client()
    before = redis.dbsize()
    rng = random.Random(7)
    for _ in range(1000):
        junk = "".join(rng.choices(string.ascii_lowercase, k=8))
        path = rng.choice(["/api/articles/", f"/api/articles/{world['article'].id}/"])
        response = client.get(f"{path}?utm_source={junk}&{junk}={rng.random()}&_={rng.randint(0, 10**9)}")
        assert response.status_code == 200 and response["X-Cache"].startswith("HIT")
    assert redis.dbsize() == before


def test_parameter_order_and_defaults_share_one_entry(world, make_client):
    client = make_client()
    assert client.get("/api/search/?q=cached&page=1")["X-Cache"] == "MISS"
    assert client.get("/api/search/?page=1&q=cached&utm_campaign=x")["X-Cache"].startswith("HIT")
    assert client.get("/api/articles/")["X-Cache"] == "MISS"
    assert client.get("/api/articles/?page=1")["X-Cache"].startswith("HIT")


def test_authenticated_reader_gets_the_same_public_bytes(world, make_client):
    anonymous = make_client().get("/")
    user = make_user(username="someone-private")
    client = make_client()
    client.force_login(user)
    for path in ("/", "/api/articles/", f"/articles/{world['article'].slug}/"):
        mine = client.get(path)
        theirs = make_client().get(path)
        assert mine.content == theirs.content, path
        assert b"someone-private" not in mine.content
        assert "Cookie" not in mine.get("Vary", "") and "Set-Cookie" not in mine, path
    assert anonymous.status_code == 200


def _without_cache_middleware():
    return [m for m in settings.MIDDLEWARE if not m.endswith("ResponseCacheMiddleware")]


def test_views_read_their_parameters_the_same_with_the_cache_on_off_or_absent(world, make_client):
    """The parameters are declared once (@cache_public) and parsed once per request: by the
    middleware, cache on or off, or by the view itself when the middleware is not there."""
    paths = [
        "/api/articles/?page=01&utm_source=x", "/api/articles/?page=abc", "/api/search/?q=cached&page=1",
        "/api/search/?q=", "/?page=1", "/?page=0", f"/category/{world['cat'].slug}/?page=x",
        "/api/articles/987654/", "/articles/no-such-slug/",
    ]

    def answers(client_class=make_client):
        fetcher.clear_local()
        engine.redis_client().flushdb()
        return {p: (r.status_code, r.content) for p in paths for r in [client_class().get(p)]}

    cached = answers()
    assert [cached[p][0] for p in paths] == [200, 400, 200, 400, 200, 400, 400, 404, 404]
    with override_settings(NEWSITE_CACHE={**settings.NEWSITE_CACHE, "ENABLED": False}):
        assert answers() == cached
    with override_settings(MIDDLEWARE=_without_cache_middleware()):
        uncached = answers(Client)  # no response-cache middleware: the front is off
    # Without the middleware a 404 is Django's handler404 (rendered with the request): same status.
    assert {p: v for p, v in uncached.items() if v[0] != 404} == {p: v for p, v in cached.items() if v[0] != 404}
