"""The breaking box that updates itself (issue 31, docs/breaking-box.md): what it reads
(/api/breaking-news/: ETag/304, s-maxage, Vary), a publish reaching polling readers through the
real Varnish while they race it, and the pages without JavaScript (the box as the server draws it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.test import Client
from rest_framework.authtoken.models import Token

from newsite.celery import app as celery_app
from tests.cdn.servers import Varnish
from tests.factories import make_article, make_category
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
S_MAXAGE = 30  # the breaking_news TTL at the edge (SPEC 4: public, max-age=0, s-maxage=30)


def box_section(html: str) -> str | None:
    """The <section class="breaking"> of a page, as served."""
    found = re.search(r'<section class="breaking".*?</section>', html, re.S)
    return found.group(0) if found else None


def polls(path: Path) -> list[dict]:
    """A reader's complete lines so far (tests/articles/breaking_poller.py)."""
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


# --- the endpoint the box polls -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_box_endpoint_is_conditional_and_cached_briefly_at_the_edge_only():
    make_article(title="Storm warning", is_breaking=True)
    client = Client()
    first = client.get("/api/breaking-news/")
    assert first.status_code == 200
    assert first["Cache-Control"].startswith("public, max-age=0, s-maxage=30")
    assert first["Vary"] == "Accept-Encoding"
    assert "breaking" in first["Surrogate-Key"].split()
    etag = first["ETag"]
    again = client.get("/api/breaking-news/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag
    # A changed box is a new ETag: the reader's old one gets the whole body.
    make_article(title="Bridge closed", is_breaking=True)
    changed = client.get("/api/breaking-news/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert [i["title"] for i in changed.json()["results"]] == ["Bridge closed", "Storm warning"]


# --- without JavaScript -----------------------------------------------------------------------------

# What the home page drew before the box updated itself (articles/templates/articles/home.html
# before issue 31), for two breaking stories.
SECTION_BEFORE = (
    '<section class="breaking" aria-label="Breaking news">\n'
    "    <strong>Breaking:</strong>\n"
    '    <a href="/articles/{b}/">Bridge closed</a> · <a href="/articles/{a}/">Storm warning</a>\n'
    "  </section>"
)


@pytest.mark.django_db(transaction=True)
def test_pages_without_javascript_show_the_box_as_before():
    from datetime import timedelta

    older = make_article(title="Storm warning", is_breaking=True, ago=timedelta(hours=2))
    newer = make_article(title="Bridge closed", is_breaking=True, ago=timedelta(hours=1))
    ordinary = make_article(title="Council meets", ago=timedelta(minutes=5))
    home = Client().get("/").content.decode()
    assert box_section(home) == SECTION_BEFORE.format(a=older.slug, b=newer.slug)
    # The script only enhances: external, deferred, no inline handler; the box's source and
    # interval are data attributes of its container.
    assert re.search(r'<script src="/static/articles/breaking-box(\.[0-9a-f]+)?\.js" defer></script>', home)
    assert 'data-breaking-src="/api/breaking-news/"' in home and "onclick" not in home

    # The article page is served without a box (its cached bytes and tags do not depend on
    # breaking news); the script fills it.
    page = Client().get(f"/articles/{ordinary.slug}/")
    assert box_section(page.content.decode()) is None
    assert 'id="breaking-box"' in page.content.decode()
    assert "breaking" not in page["Surrogate-Key"].split()

    # No breaking story: no box on the home page, as before (only its empty container).
    type(older).objects.filter(is_breaking=True).update(is_breaking=False)
    from caching import invalidate_tags

    invalidate_tags(["breaking"])
    assert box_section(Client().get("/").content.decode()) is None


# --- through the edge, readers racing the publish ---------------------------------------------------


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def edge(live_server, settings, eager_celery):
    port = int(live_server.url.rsplit(":", 1)[1])
    varnish = Varnish(port).start()
    settings.CDN_BACKENDS = {"varnish": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": varnish.url}}
    yield varnish
    varnish.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_breaking_publish_reaches_every_polling_reader_through_the_edge(edge, live_server, editor, tmp_path):
    """Four reader processes poll the box through Varnish (If-None-Match, every 0.3 s) while an
    editor publishes a breaking story through the API. After the POST returned, no poll sent
    later may miss it (the write purged the edge before answering), and every reader has it
    within its interval + s-maxage (the bound even if a purge were lost)."""
    interval = 0.3
    make_article(title="Earlier alert", is_breaking=True)
    category = make_category(name="World")
    token = Token.objects.create(user=editor).key
    assert edge.get("/api/breaking-news/").status_code == 200
    assert edge.get("/api/breaking-news/").headers["X-Cache-Edge"] == "HIT"

    outputs = [tmp_path / f"reader-{i}.jsonl" for i in range(4)]
    readers = [
        subprocess.Popen([sys.executable, "-m", "tests.articles.breaking_poller", edge.url + "/api/breaking-news/",
                          str(interval), "90"], cwd=ROOT, stdin=subprocess.PIPE, stdout=out.open("w"), text=True)
        for out in outputs
    ]
    try:
        # Every reader has polled twice (the second a 304 from the edge) before the write.
        assert wait_until(lambda: all(len(polls(out)) >= 2 for out in outputs), timeout=60)
        response = requests.post(live_server.url + "/api/articles/", json={
            "title": "Dam breach upstream", "category_id": category.pk, "status": "published", "is_breaking": True,
        }, headers={"Authorization": f"Token {token}"}, timeout=30)
        returned = time.time()
        assert response.status_code == 201, response.text
        new_id = response.json()["id"]
        assert wait_until(lambda: all(sum(p["sent"] > returned for p in polls(out)) >= 3 for out in outputs), timeout=60)
    finally:
        for reader in readers:
            reader.stdin.write("stop\n")
            reader.stdin.flush()
        for reader in readers:
            reader.wait(timeout=30)
    logs = [polls(out) for out in outputs]

    for log in logs:
        assert log and all(poll["status"] in (200, 304) for poll in log), log
        before = [p for p in log if p["sent"] < returned]
        after = [p for p in log if p["sent"] >= returned]
        assert before and after, "the reader did not race the write"
        # Old answers only from polls sent before the write returned.
        assert all(new_id in p["ids"] for p in after), [p for p in after if new_id not in p["ids"]]
        first_seen = min(p["sent"] for p in log if new_id in p["ids"])
        assert first_seen <= returned + interval + S_MAXAGE
        assert any(p["status"] == 304 for p in before), "readers revalidate with If-None-Match"
