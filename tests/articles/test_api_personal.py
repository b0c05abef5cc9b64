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
    "body",
    [{}, {"author_id": 1, "category_id": 1}, {"author_id": 999999}, {"category_id": "abc"},
     {"author_id": None, "category_id": None}, {"author_id": 1, "extra": 1}],
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


@pytest.mark.parametrize("field", ["author_id", "category_id"])
def test_follow_id_must_be_a_json_integer(client, field):
    """The schema says integer: "1" (which DRF would look up) and true are a 400 (issue 16.7)."""
    author, cat = make_author(), make_category()
    row_id = author.id if field == "author_id" else cat.id
    for value in (str(row_id), True):
        response = client.post("/api/user/follows/", {field: value}, format="json")
        assert response.status_code == 400, value
        assert response.json()["detail"][field] == ["must be an integer id"]
    assert client.post("/api/user/follows/", {field: row_id}, format="json").status_code == 201


@pytest.mark.parametrize("body", [{"last_name": 0}, {"first_name": ["x"]}, {"email": False}])
def test_profile_strings_must_be_json_strings(client, reader, body):
    """DRF's CharField would store 0 as "0"; the schema says string, so it is a 400."""
    response = client.patch("/api/user/profile/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    reader.refresh_from_db()
    assert reader.last_name == "" and reader.first_name == ""


@pytest.mark.parametrize("fmt", ["multipart", "urlencoded"])
def test_bodies_are_json_only(client, reader, fmt):
    """The API parses JSON only: a form body is a JSON 415, and changes nothing."""
    if fmt == "multipart":
        response = client.patch("/api/user/profile/", {"last_name": "Form"}, format="multipart")
    else:
        response = client.generic("PATCH", "/api/user/profile/", "last_name=Form", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    reader.refresh_from_db()
    assert reader.last_name == ""
