"""Public JSON endpoints: happy paths, 404s, 400s; nothing user-specific."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from articles import counters
from articles.models import Comment, Like
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def world():
    cat = make_category(name="World")
    author = make_author(name="Ada Writer")
    newest = make_article(author=author, category=cat, title="Newest story", ago=timedelta(minutes=5))
    older = make_article(author=author, category=cat, title="Older story", ago=timedelta(days=2))
    draft = make_article(author=author, category=cat, title="Secret draft", published=False)
    return {"cat": cat, "author": author, "newest": newest, "older": older, "draft": draft}


def test_home_feed_newest_first_without_drafts(client, world):
    response = client.get("/api/articles/")
    assert response.status_code == 200
    body = response.json()
    titles = [a["title"] for a in body["results"]]
    assert titles == ["Newest story", "Older story"]
    assert body["page"] == 1 and body["next"] is None and body["previous"] is None
    first = body["results"][0]
    assert first["author"]["name"] == "Ada Writer" and first["category"]["slug"] == "world"


def test_home_feed_pages_of_20(client):
    author, cat = make_author(), make_category()
    for i in range(25):
        make_article(author=author, category=cat, ago=timedelta(minutes=i + 1))
    page1 = client.get("/api/articles/?page=1").json()
    page2 = client.get("/api/articles/?page=2").json()
    assert len(page1["results"]) == 20 and page1["next"] == 2
    assert len(page2["results"]) == 5 and page2["next"] is None and page2["previous"] == 1
    assert not {a["id"] for a in page1["results"]} & {a["id"] for a in page2["results"]}


@pytest.mark.parametrize("value", ["abc", "0", "-1", "999999", "1.5", "", "+-1", "--1", "9" * 5000, "١"])
def test_bad_page_is_400_json(client, value):
    response = client.get(f"/api/articles/?page={value}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and "page" in body["detail"]


def test_unknown_parameters_are_ignored(client, world):
    response = client.get("/api/articles/?utm_source=x&_=12345")
    assert response.status_code == 200


def test_article_detail(client, world):
    article = world["newest"]
    Comment.objects.create(article=article, user=make_user(), body="Nice")
    Like.objects.create(article=article, user=make_user())
    response = client.get(f"/api/articles/{article.id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Newest story"
    assert body["comment_count"] == 1 and body["like_count"] == 1
    assert body["author"]["name"] == "Ada Writer" and body["author"]["avatar_url"]
    assert body["category"]["name"] == "World"
    assert body["version"] == 1


def test_article_detail_404_for_unknown_and_draft(client, world):
    for article_id in (999999, world["draft"].id):
        response = client.get(f"/api/articles/{article_id}/")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


def test_trending_falls_back_to_stored_views_when_redis_has_none(client, world):
    world["older"].view_count = 100
    world["older"].save()
    body = client.get("/api/articles/trending/").json()
    assert [a["title"] for a in body["results"]][:2] == ["Older story", "Newest story"]


def test_breaking_news_window_and_limit(client):
    author, cat = make_author(), make_category()
    for i in range(7):
        make_article(author=author, category=cat, is_breaking=True, ago=timedelta(minutes=10 + i))
    make_article(author=author, category=cat, title="Old breaking", is_breaking=True, ago=timedelta(hours=7))
    make_article(author=author, category=cat, title="Not breaking", ago=timedelta(minutes=1))
    body = client.get("/api/breaking-news/").json()
    titles = [a["title"] for a in body["results"]]
    assert len(titles) == 5
    assert "Old breaking" not in titles and "Not breaking" not in titles


def test_categories_and_category_feed(client, world):
    other = make_category(name="Sports")
    make_article(category=other, title="Match report")
    cats = client.get("/api/categories/").json()["results"]
    assert [c["slug"] for c in cats] == ["sports", "world"]
    feed = client.get("/api/categories/world/articles/").json()
    assert feed["category"]["name"] == "World"
    assert [a["title"] for a in feed["results"]] == ["Newest story", "Older story"]
    assert client.get("/api/categories/nope/articles/").status_code == 404
    assert client.get("/api/categories/world/articles/?page=x").status_code == 400


def test_author_and_author_feed(client, world):
    author = world["author"]
    body = client.get(f"/api/authors/{author.id}/").json()
    assert body["name"] == "Ada Writer" and body["article_count"] == 2
    feed = client.get(f"/api/authors/{author.id}/articles/").json()
    assert [a["title"] for a in feed["results"]] == ["Newest story", "Older story"]
    assert client.get("/api/authors/999999/").status_code == 404
    assert client.get("/api/authors/999999/articles/").status_code == 404


def test_search_full_text(client, world):
    make_article(title="Volcano erupts near the coast", ago=timedelta(hours=3))
    body = client.get("/api/search/?q=volcanoes").json()  # stemming: volcanoes -> volcano
    assert [a["title"] for a in body["results"]] == ["Volcano erupts near the coast"]
    assert body["q"] == "volcanoes"
    assert client.get("/api/search/?q=secret").json()["results"] == []  # drafts are not found


@pytest.mark.parametrize("query", ["", "q=", "q=" + "x" * 201, "q=ok&page=0", "q=a%00b", "q=%1b"])
def test_search_bad_input_is_400(client, query):
    response = client.get(f"/api/search/?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_public_responses_do_not_vary_on_cookie_for_logged_in_users(client, world):
    user = make_user()
    client.force_login(user)
    response = client.get("/api/articles/")
    assert "Cookie" not in response.get("Vary", "")
    anonymous = APIClient().get("/api/articles/")
    assert response.content == anonymous.content


def test_view_counter(client, world):
    article = world["newest"]
    assert client.post(f"/api/articles/{article.id}/views/").status_code == 204
    counters.flush_view_counts()  # write-behind: PostgreSQL has it after a flush
    article.refresh_from_db()
    assert article.view_count == 1
    assert client.post("/api/articles/999999/views/").status_code == 404
    assert client.post(f"/api/articles/{world['draft'].id}/views/").status_code == 404


def test_public_endpoints_refuse_writes(client, world):
    assert client.post("/api/articles/trending/").status_code in (401, 403, 405)
    assert client.delete("/api/categories/").status_code in (401, 403, 405)
