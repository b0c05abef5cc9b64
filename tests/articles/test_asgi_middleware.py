"""The response middleware under ASGI (caching/middleware.py, issue 31): Django's ASGI handler
calls its async process_view directly (no sync_to_async wrapper), that path fills and serves the
same entries as the sync one, and newsite's subclass still turns its refusals into responses
(a client over its public-miss budget gets the 429)."""

from __future__ import annotations

import json

import pytest
from django.core.handlers.asgi import ASGIHandler

from caching.middleware import PublicResponseCacheMiddleware
from tests.articles.test_client_budgets import HOSTILE, budgets  # noqa: F401 (fixture)
from tests.articles.test_response_cache import public_paths, world  # noqa: F401 (fixture)
from tests.factories import make_article
from tests.wsgi_client import django_asgi_client, django_wsgi_client

pytestmark = pytest.mark.django_db


def test_django_calls_the_async_process_view_without_a_thread():
    handler = ASGIHandler()
    hooks = [hook for hook in handler._view_middleware
             if isinstance(getattr(hook, "__self__", None), PublicResponseCacheMiddleware)]
    # Django wraps a sync hook in a SyncToAsync object (no __self__): this one is the method itself.
    assert len(hooks) == 1 and hooks[0].__func__ is PublicResponseCacheMiddleware.aprocess_view


def test_the_async_path_fills_and_serves_what_the_sync_path_does(world):  # noqa: F811
    asgi, wsgi = django_asgi_client(), django_wsgi_client()
    for path in public_paths(world):
        filled = asgi.get(path)  # a miss on the async path: afetch, the view in a thread
        assert filled.status_code == 200 and filled["X-Cache"] == "MISS", path
        from_l1 = wsgi.get(path)  # the sync path finds the async path's entry
        assert from_l1["X-Cache"] == "HIT-L1" and from_l1.content == filled.content, path
        again = asgi.get(path)
        assert again["X-Cache"] == "HIT-L1" and again.header_set() == from_l1.header_set(), path
        not_modified = asgi.get(path, HTTP_IF_NONE_MATCH=again["ETag"])
        assert not_modified.status_code == 304 and not_modified.content == b"", path
    # A cached negative and a bad parameter answer as on the sync path.
    for path, status in (("/api/articles/987654/", 404), ("/api/articles/?page=abc", 400)):
        expected, answered = wsgi.get(path), asgi.get(path)
        assert answered.status_code == expected.status_code == status, path
        assert answered.content == expected.content, path


def test_the_subclass_refusal_answers_on_the_async_path(budgets):  # noqa: F811
    for n in range(3):
        make_article(title=f"Story {n}")
    hostile = django_asgi_client()
    for page in (1, 2, 3):  # three misses: the budget
        assert hostile.get(f"/api/articles/?page={page}", REMOTE_ADDR=HOSTILE).status_code in (200, 404)
    refused = hostile.get("/api/articles/?page=4", REMOTE_ADDR=HOSTILE)
    assert refused.status_code == 429 and json.loads(refused.content)["error"] == "throttled"
    assert refused["Cache-Control"] == "no-store"
    assert hostile.get("/api/articles/?page=1", REMOTE_ADDR=HOSTILE).status_code == 200  # hits still answer
