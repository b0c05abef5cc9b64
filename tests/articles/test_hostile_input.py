"""Issue 28, the small items: what one client sends must not change what others get, nor make a
500 (items 5, 6, 9). Each test fails before its fix."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from articles.models import Article, Category
from newsite.ops.canary import PROBE_HEADER, SERVED_BY_HEADER
from tests.articles.conftest import grant
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db

PROBE_META = "HTTP_" + PROBE_HEADER.upper().replace("-", "_")


def test_too_many_query_fields_is_a_400_not_a_500(make_client):
    make_article()
    client = make_client()
    client.get("/api/articles/")  # an L1 entry: the front answers the route itself
    query = "&".join(f"f{i}=1" for i in range(1200))
    response = client.get(f"/api/articles/?{query}")
    assert response.status_code == 400


def test_the_canary_probe_header_makes_the_answer_unstorable_by_shared_caches(make_client):
    article = make_article()
    client = make_client()
    path = f"/api/articles/{article.pk}/"
    client.get(path)
    for _ in range(2):  # a miss (Django) and an L1 hit (the front, when it is on)
        probed = client.get(path, **{PROBE_META: "1"})
        assert probed.status_code == 200 and probed[SERVED_BY_HEADER]
        assert probed["Cache-Control"] == "no-store"
    plain = client.get(path)
    assert plain.get(SERVED_BY_HEADER) is None and plain["Cache-Control"].startswith("public")


@pytest.fixture
def token_client():
    user = make_user(username="ctl-editor", staff=True)
    grant(user, "add_article", "change_article")
    make_author(name="Ctl", user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.parametrize("field", ["title", "excerpt", "body"])
def test_a_control_character_in_text_is_refused_at_the_write(token_client, field):
    cat = make_category()
    body = {"title": "Clean", "category_id": cat.pk, field: "bad\x0bvalue"}
    response = token_client.post("/api/articles/", body, format="json")
    assert response.status_code == 400 and field in response.json()["detail"], response.content
    assert not Article.objects.filter(title__contains="\x0b").exists()


def test_a_control_character_already_stored_does_not_break_the_feeds():
    cat = make_category(name="Controls")
    article = make_article(category=cat, title="Vertical\x0btab")
    Article.objects.filter(pk=article.pk).update(excerpt="form\x0cfeed")  # past the API's validation
    client = Client()
    for path in ("/feed/", "/feed/atom/", f"/category/{cat.slug}/feed/", f"/category/{cat.slug}/feed/atom/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"Verticaltab" in response.content and b"\x0b" not in response.content, path


def test_a_control_character_already_stored_keeps_the_sitemaps_valid_xml():
    """Issue 28.6: the news sitemap printed a stored title's control character (invalid XML 1.0,
    refused by every parser); the sitemaps drop it and stay parseable."""
    article = make_article(title="Sitemap\x0bstory")
    Article.objects.filter(pk=article.pk).update(title="Sitemap\x0bstory\x1f")  # past the model's validation
    client = Client()
    for path in ("/sitemap-news.xml", "/sitemap-articles.xml", "/sitemap.xml"):
        response = client.get(path)
        assert response.status_code == 200, path
        ElementTree.fromstring(response.content)  # a ParseError on invalid XML
        assert b"\x0b" not in response.content and b"\x1f" not in response.content, path
    assert b"Sitemapstory" in client.get("/sitemap-news.xml").content


@pytest.mark.django_db
def test_category_and_author_names_refuse_control_characters(admin_client):
    """The names feeds and pages print (issue 28.6): the admin refuses them like article text."""
    response = admin_client.post("/admin/articles/category/add/", {"name": "Bad\x0bname", "slug": "bad-name"})
    assert response.status_code == 200 and b"control characters are not allowed" in response.content
    assert not Category.objects.filter(slug="bad-name").exists()
    author = make_author()
    author.name = "Vertical\x0btab"
    with pytest.raises(ValidationError):
        author.full_clean()
