import pytest
from django.test import Client

from articles.models import Article
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_():
    user = make_user(username="boss", staff=True)
    user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_changelist_and_publish_unpublish_actions(admin_client_):
    drafts = [make_article(published=False) for _ in range(2)]
    assert admin_client_.get("/admin/articles/article/").status_code == 200
    response = admin_client_.post(
        "/admin/articles/article/",
        {"action": "publish_selected", "_selected_action": [a.pk for a in drafts]},
        follow=True,
    )
    assert response.status_code == 200
    for article in drafts:
        article.refresh_from_db()
        assert article.status == Article.Status.PUBLISHED and article.published_at and article.version == 2
    admin_client_.post("/admin/articles/article/", {"action": "unpublish_selected", "_selected_action": [drafts[0].pk]})
    drafts[0].refresh_from_db()
    assert drafts[0].status == Article.Status.DRAFT


def test_admin_add_and_change(admin_client_):
    author, cat = make_author(), make_category()
    form = {
        "title": "From the admin",
        "slug": "from-the-admin",
        "excerpt": "",
        "body": "Text",
        "author": author.pk,
        "category": cat.pk,
        "status": "published",
        "published_at_0": "",
        "published_at_1": "",
        "hero_image_url": "",
    }
    response = admin_client_.post("/admin/articles/article/add/", form)
    assert response.status_code == 302, response.content[:2000]
    article = Article.objects.get(slug="from-the-admin")
    assert article.published_at is not None and article.version == 1
    form["title"] = "Edited in the admin"
    response = admin_client_.post(f"/admin/articles/article/{article.pk}/change/", form)
    assert response.status_code == 302
    article.refresh_from_db()
    assert article.title == "Edited in the admin" and article.version == 2


def test_admin_refuses_non_staff():
    client = Client()
    client.force_login(make_user())
    assert client.get("/admin/articles/article/").status_code == 302  # to the login page
