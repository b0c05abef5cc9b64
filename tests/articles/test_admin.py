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


def test_state_column_filter_and_publish_now(admin_client_):
    from datetime import timedelta

    from django.utils import timezone

    live = make_article(title="Live one")
    scheduled = make_article(title="Scheduled one", ago=-timedelta(hours=2))
    expired = make_article(title="Expired one", ago=timedelta(hours=3), expires_at=timezone.now() - timedelta(hours=1))
    draft = make_article(title="Draft one", published=False)
    page = admin_client_.get("/admin/articles/article/").content.decode()
    assert "Scheduled" in page and "Expired" in page and "Live" in page and "Draft" in page
    for state, shown, hidden in (("scheduled", scheduled, live), ("live", live, scheduled), ("expired", expired, live),
                                 ("draft", draft, scheduled)):
        listed = admin_client_.get(f"/admin/articles/article/?state={state}").content.decode()
        assert shown.title in listed and hidden.title not in listed, state
    admin_client_.post("/admin/articles/article/", {"action": "publish_now", "_selected_action": [scheduled.pk, expired.pk]})
    for article in (scheduled, expired):
        article.refresh_from_db()
        assert article.visibility().value == "live" and article.published_at <= timezone.now()


def test_admin_refuses_a_take_down_before_go_live(admin_client_):
    article = make_article(title="Form check")
    form = {
        "title": article.title, "slug": article.slug, "excerpt": "", "body": "", "author": article.author_id,
        "category": article.category_id, "status": "published",
        "published_at_0": "2030-01-02", "published_at_1": "10:00:00",
        "expires_at_0": "2030-01-01", "expires_at_1": "10:00:00", "hero_image_url": "",
    }
    response = admin_client_.post(f"/admin/articles/article/{article.pk}/change/", form)
    assert response.status_code == 200  # the form again, with its error
    assert "must be after the go-live time" in response.content.decode()
    article.refresh_from_db()
    assert article.expires_at is None


def test_admin_refuses_a_form_opened_before_another_save(admin_client_):
    from articles import services

    article = make_article(title="Shared desk")
    form = {
        "title": "Mine", "slug": article.slug, "excerpt": "", "body": "", "author": article.author_id,
        "category": article.category_id, "status": "published", "published_at_0": "2020-01-02",
        "published_at_1": "10:00:00", "hero_image_url": "", "loaded_version": article.version,
    }
    services.article_update(article=article, data={"title": "Theirs"})  # saved after the form was opened
    response = admin_client_.post(f"/admin/articles/article/{article.pk}/change/", form)
    assert response.status_code == 200 and "saved by someone else" in response.content.decode()
    assert Article.objects.get(pk=article.pk).title == "Theirs"
    form["loaded_version"] = Article.objects.get(pk=article.pk).version
    assert admin_client_.post(f"/admin/articles/article/{article.pk}/change/", form).status_code == 302
    assert Article.objects.get(pk=article.pk).title == "Mine"
