"""The admin Cache page: staff only, a server-side SVG chart, and a purge form that goes through
caching.invalidate_tags_on_commit (CDN outbox rows in the transaction, app tiers after commit)."""

from __future__ import annotations

import pytest

import caching
from cdn.models import PurgeOutbox
from tests.factories import make_user

pytestmark = pytest.mark.django_db

URL = "/admin/cache/"


def test_anonymous_is_sent_to_the_admin_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_user_is_refused(client):
    client.force_login(make_user(staff=False))
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_sees_chart_backlog_and_recent_invalidations(client):
    caching.fetch("opsadmin:1", lambda: "v", kind="article")
    caching.fetch("opsadmin:1", lambda: "v", kind="article")
    PurgeOutbox.objects.create(tags=["article:7", "feed:home"])
    client.force_login(make_user(staff=True))
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="cache-chart"') == 2
    assert 'class="bar bar-l1"' in html and ">opsadmin<" in html
    assert "CDN purge outbox" in html and "article:7 feed:home" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace("http://testserver", "")
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]


def test_purge_form_invalidates_every_tier(client, django_capture_on_commit_callbacks):
    calls = []
    caching.fetch("opspurge:1", lambda: calls.append(1) or "v1", kind="article", tags=["article:4242"])
    assert caching.fetch("opspurge:1", lambda: "v2", kind="article", tags=["article:4242"]).value == "v1"
    client.force_login(purger())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"tags": "article:4242, feed:home"})
    assert response.status_code == 302
    rows = list(PurgeOutbox.objects.values_list("tags", flat=True))
    assert ["article:4242", "feed:home"] in rows  # the CDN path: one outbox row per backend
    assert caching.fetch("opspurge:1", lambda: "v2", kind="article", tags=["article:4242"]).value == "v2"


def purger():
    """A staff user with articles.purge_cache (articles/permissions); staff alone gets 403."""
    from django.contrib.auth.models import Permission

    user = make_user(staff=True)
    user.user_permissions.add(Permission.objects.get(codename="purge_cache"))
    return user


def test_staff_without_the_permission_sees_no_purge_form_and_cannot_post(client):
    client.force_login(make_user(staff=True))
    page = client.get(URL).content.decode()
    assert 'value="Purge from every tier"' not in page and "articles.purge_cache" in page
    assert client.post(URL, {"tags": "article:1"}).status_code == 403
    assert not PurgeOutbox.objects.exists()
    client.force_login(purger())
    assert 'value="Purge from every tier"' in client.get(URL).content.decode()


def test_purge_form_rejects_what_is_not_a_tag(client):
    client.force_login(purger())
    response = client.post(URL, {"tags": "<script>"})
    assert response.status_code == 200
    assert "Not a tag" in response.content.decode()
    assert not PurgeOutbox.objects.exists()
