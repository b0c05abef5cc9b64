"""HTML pages: same data as the API, nothing user-specific."""

from datetime import timedelta

import pytest
from django.test import Client

from tests.factories import make_article, make_category, make_user

pytestmark = pytest.mark.django_db


def test_home_article_and_category_pages():
    cat = make_category(name="Culture")
    article = make_article(category=cat, title="Opera returns", ago=timedelta(minutes=3))
    make_article(category=cat, title="Breaking thing", is_breaking=True)
    client = Client()
    home = client.get("/")
    assert home.status_code == 200 and b"Opera returns" in home.content and b"Breaking:" in home.content
    page = client.get(f"/articles/{article.slug}/")
    assert page.status_code == 200 and b"Opera returns" in page.content
    category = client.get("/category/culture/")
    assert category.status_code == 200 and b"Opera returns" in category.content


def test_pages_404_and_400():
    client = Client()
    assert client.get("/articles/nope/").status_code == 404
    assert client.get("/category/nope/").status_code == 404
    assert client.get("/?page=abc").status_code == 400
    draft = make_article(published=False)
    assert client.get(f"/articles/{draft.slug}/").status_code == 404


def test_pages_carry_nothing_user_specific():
    make_article(title="Shared page")
    user = make_user(username="very-private-name")
    client = Client()
    client.force_login(user)
    for path in ("/",):
        response = client.get(path)
        assert b"very-private-name" not in response.content
        assert b"csrfmiddlewaretoken" not in response.content
        assert response.content == Client().get(path).content
