"""The breaking box that updates itself (issue 31, docs/breaking-box.md): what it reads
(/api/breaking-news/: ETag/304, s-maxage, Vary) and the pages without JavaScript (the box as the
server draws it). Through the edge with readers racing a publish: tests/cdn/test_breaking_box_edge.py."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import make_article


def box_section(html: str) -> str | None:
    """The <section class="breaking"> of a page, as served."""
    found = re.search(r'<section class="breaking".*?</section>', html, re.S)
    return found.group(0) if found else None


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
