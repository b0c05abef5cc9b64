"""Personal endpoints: authentication required, private no-store, never tagged."""

import pytest
from rest_framework.test import APIClient

from articles.models import Comment, Follow, Like
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db

PERSONAL_GETS = ["/api/user/profile/", "/api/user/feed/", "/api/user/follows/"]


@pytest.fixture
def reader():
    return make_user(username="reader")


@pytest.fixture
def client(reader):
    c = APIClient()
    c.force_authenticate(reader)
    return c


@pytest.mark.parametrize("path", PERSONAL_GETS)
def test_personal_gets_need_auth(path):
    response = APIClient().get(path)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize("path", PERSONAL_GETS)
def test_personal_gets_are_private_and_untagged(client, path):
    response = client.get(path)
    assert response.status_code == 200
    cache_control = response["Cache-Control"]
    assert "private" in cache_control and "no-store" in cache_control
    assert "public" not in cache_control and "s-maxage" not in cache_control
    assert "Surrogate-Key" not in response and "Cache-Tag" not in response


def test_profile_get_and_patch(client, reader):
    assert client.get("/api/user/profile/").json()["username"] == "reader"
    response = client.patch("/api/user/profile/", {"first_name": "Rita"}, format="json")
    assert response.status_code == 200 and response.json()["first_name"] == "Rita"
    reader.refresh_from_db()
    assert reader.first_name == "Rita"
    assert client.patch("/api/user/profile/", {"username": "x"}, format="json").status_code == 400
    assert client.patch("/api/user/profile/", {"email": "not-an-email"}, format="json").status_code == 400


def test_malformed_json_is_400(client):
    response = client.generic("PATCH", "/api/user/profile/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


def test_follow_and_feed(client, reader):
    author, cat = make_author(), make_category()
    followed = make_article(author=author, title="By followed author")
    in_cat = make_article(category=cat, title="In followed category")
    make_article(title="Unrelated")
    assert client.post("/api/user/follows/", {"author_id": author.id}, format="json").status_code == 201
    assert client.post("/api/user/follows/", {"author_id": author.id}, format="json").status_code == 200
    assert client.post("/api/user/follows/", {"category_id": cat.id}, format="json").status_code == 201
    titles = {a["title"] for a in client.get("/api/user/feed/").json()["results"]}
    assert titles == {followed.title, in_cat.title}
    assert client.get("/api/user/profile/").json()["follows"] == {"authors": [author.id], "categories": [cat.id]}
    assert client.delete("/api/user/follows/", {"author_id": author.id}, format="json").status_code == 204
    assert client.delete("/api/user/follows/", {"author_id": author.id}, format="json").status_code == 404
    assert Follow.objects.filter(user=reader).count() == 1


@pytest.mark.parametrize(
    "body", [{}, {"author_id": 1, "category_id": 1}, {"author_id": 999999}, {"category_id": "abc"}]
)
def test_follow_bad_input(client, body):
    make_author(), make_category()
    assert client.post("/api/user/follows/", body, format="json").status_code == 400


def test_comment(client, reader):
    article = make_article()
    response = client.post(f"/api/articles/{article.id}/comments/", {"body": "Great read"}, format="json")
    assert response.status_code == 201
    assert Comment.objects.get(article=article).user == reader
    assert client.post(f"/api/articles/{article.id}/comments/", {"body": ""}, format="json").status_code == 400
    assert client.post("/api/articles/999999/comments/", {"body": "x"}, format="json").status_code == 404
    assert APIClient().post(f"/api/articles/{article.id}/comments/", {"body": "x"}, format="json").status_code == 401


def test_like_once(client, reader):
    article = make_article()
    assert client.post(f"/api/articles/{article.id}/like/").status_code == 201
    assert client.post(f"/api/articles/{article.id}/like/").status_code == 200
    assert Like.objects.filter(article=article).count() == 1
    assert client.delete(f"/api/articles/{article.id}/like/").status_code == 204
    assert Like.objects.filter(article=article).count() == 0
    assert APIClient().post(f"/api/articles/{article.id}/like/").status_code == 401
    draft = make_article(published=False)
    assert client.post(f"/api/articles/{draft.id}/like/").status_code == 404
