"""Fixtures of the articles tests."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import make_author, make_user
from tests.wsgi_client import front_client


def grant(user, *codenames):
    """Editors hold the articles model permissions (articles/permissions), not just is_staff."""
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="articles", codename__in=codenames))


@pytest.fixture
def editor():
    """A staff user with the add, change and delete article permissions and an author profile."""
    user = make_user(username="editor", staff=True)
    grant(user, "add_article", "change_article", "delete_article")
    make_author(name="Ed Itor", user=user)
    return user


@pytest.fixture
def token_client(editor):
    """The editor's API client, by DRF token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=editor).key}")
    return client


@pytest.fixture(params=["django", "front", "front-asgi"])
def make_client(request):
    """Every test runs three times: through Django's stack (its test Client), through the WSGI
    front of newsite/wsgi.py (L1 hits answered before the middleware, the rest by Django), and
    through the ASGI front of newsite/asgi.py (the rest by Django's ASGI handler, the response
    middleware on its async path)."""
    if request.param == "django":
        return Client
    if request.param == "front":
        return front_client
    return lambda: front_client("asgi")


@pytest.fixture
def edge(live_server, settings):
    """varnishd with deploy/varnish/default.vcl in front of the live server, the site's one CDN
    backend; the outbox drain runs inline on commit (eager Celery, as `make run` does), so a
    write's purge has reached it when the write returns."""
    from newsite.celery import app as celery_app
    from tests.cdn.servers import Varnish

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    varnish = Varnish(int(live_server.url.rsplit(":", 1)[1])).start()
    settings.CDN_BACKENDS = {"varnish": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": varnish.url}}
    try:
        yield varnish
    finally:
        varnish.close()
        celery_app.conf.task_always_eager = previous
