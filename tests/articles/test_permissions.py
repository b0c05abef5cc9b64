"""Least privilege (issue 16.6): each editorial endpoint and admin purge needs its model
permission; `is_staff` alone gets 403. Demo log-ins with known passwords exist only with
`seed_demo --demo-accounts` (`make run`), and no public bio carries a password."""

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from articles.models import Article, Author
from cdn.models import PurgeOutbox
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db


def staff(*codenames, username="staffer"):
    user = make_user(username=username, staff=True)
    make_author(name="Staff Writer", user=user)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="articles"))
    return user


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_create_needs_add_article():
    cat = make_category(name="Science")
    body = {"title": "Comet", "category_id": cat.id, "status": "published"}
    assert api(staff()).post("/api/articles/", body, format="json").status_code == 403
    assert api(staff("change_article", username="c")).post("/api/articles/", body, format="json").status_code == 403
    assert not Article.objects.filter(title="Comet").exists()
    assert api(staff("add_article", username="a")).post("/api/articles/", body, format="json").status_code == 201


def test_edit_needs_change_article():
    article = make_article(title="Before")
    url = f"/api/articles/{article.pk}/"
    assert api(staff("add_article", "delete_article")).patch(url, {"title": "After"}, format="json").status_code == 403
    article.refresh_from_db()
    assert article.title == "Before"
    assert api(staff("change_article", username="c")).patch(url, {"title": "After"}, format="json").status_code == 200
    article.refresh_from_db()
    assert article.title == "After"


def test_delete_needs_delete_article():
    article = make_article()
    url = f"/api/articles/{article.pk}/"
    assert api(staff("add_article", "change_article")).delete(url).status_code == 403
    assert Article.objects.filter(pk=article.pk).exists()
    assert api(staff("delete_article", username="d")).delete(url).status_code == 204
    assert not Article.objects.filter(pk=article.pk).exists()


def test_anonymous_gets_401_or_403():
    assert APIClient().post("/api/articles/", {}, format="json").status_code in (401, 403)


def _admin(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admin_cache_page_purge_needs_purge_cache():
    page = _admin(staff())
    assert page.get("/admin/cache/").status_code == 200  # the numbers: any staff
    before = PurgeOutbox.objects.count()
    assert page.post("/admin/cache/", {"tags": "feed:home"}).status_code == 403
    assert PurgeOutbox.objects.count() == before
    allowed = _admin(staff("purge_cache", username="p"))
    assert allowed.post("/admin/cache/", {"tags": "feed:home"}).status_code == 302
    assert PurgeOutbox.objects.count() > before


def test_admin_purge_action_needs_purge_cache():
    article = make_article()
    data = {"action": "purge_from_caches", "_selected_action": [article.pk]}
    changer = _admin(staff("view_article", "change_article"))
    before = PurgeOutbox.objects.count()
    response = changer.get("/admin/articles/article/")
    assert "purge_from_caches" not in response.content.decode()
    changer.post("/admin/articles/article/", data)
    assert PurgeOutbox.objects.count() == before
    purger = _admin(staff("view_article", "purge_cache", username="p"))
    assert "purge_from_caches" in purger.get("/admin/articles/article/").content.decode()
    assert purger.post("/admin/articles/article/", data).status_code == 302
    assert PurgeOutbox.objects.count() > before


def _password_works(username, password) -> bool:
    from django.contrib.auth import authenticate

    return authenticate(username=username, password=password) is not None


def test_seed_demo_has_no_known_password_unless_asked():
    call_command("seed_demo", "--articles", "20", verbosity=0)
    assert not _password_works("demo-editor", "demo-editor")
    assert not _password_works("demo-reader", "demo-reader")
    editor = Author.objects.get(user__username="demo-editor")
    assert not editor.user.is_staff and not editor.user.is_superuser
    body = Client().get(f"/api/authors/{editor.pk}/").content.decode()
    assert "demo-editor /" not in body and "password" not in body.lower() and "log in" not in body.lower()


def test_seed_demo_accounts_for_make_run():
    call_command("seed_demo", "--articles", "20", "--demo-accounts", verbosity=0)
    assert _password_works("demo-editor", "demo-editor")
    editor = Author.objects.get(user__username="demo-editor")
    assert editor.user.is_superuser
    assert "demo-editor" not in editor.bio
