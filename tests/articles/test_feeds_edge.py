"""Feeds and sitemaps behind the real edge (varnishd with deploy/varnish/default.vcl in front of
the live server): cached there (HIT, 304 for a poller), and an unpublish makes the next GET
through Varnish fresh — the item is gone from the feeds and the sitemaps — by the CDN purge the
outbox drain delivers (eager Celery, as `make run` does and tests/cdn does)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from articles import services
from articles.models import Article
from tests.factories import make_article, make_author, make_category

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
SITE = "http://testsite.example"


@pytest.fixture
def edge(edge, settings):
    """tests/articles/conftest.py's edge, the site's public origin SITE."""
    settings.SITE_URL = SITE
    return edge


def rss_titles(response) -> list[str]:
    assert response.status_code == 200, response.text[:300]
    return [i.findtext("title") for i in ET.fromstring(response.content).find("channel").findall("item")]


def atom_titles(response) -> list[str]:
    assert response.status_code == 200, response.text[:300]
    atom = "{http://www.w3.org/2005/Atom}"
    return [e.findtext(f"{atom}title") for e in ET.fromstring(response.content).findall(f"{atom}entry")]


def sitemap_locs(response) -> list[str]:
    assert response.status_code == 200, response.text[:300]
    return [u.findtext(f"{SM}loc") for u in ET.fromstring(response.content).findall(f"{SM}url")]


def test_unpublish_leaves_feeds_and_sitemaps_on_the_next_get_through_the_edge(edge):
    category, author = make_category(name="Politics"), make_author()
    kept = make_article(author=author, category=category, title="Kept story")
    gone = make_article(author=author, category=category, title="Withdrawn story")
    gone_url = f"{SITE}/articles/{gone.slug}/"
    reads = {
        "/feed/": rss_titles,
        "/feed/atom/": atom_titles,
        f"/category/{category.slug}/feed/": rss_titles,
        "/sitemap-articles.xml": sitemap_locs,
        "/sitemap-news.xml": sitemap_locs,
    }
    shows_gone = {
        path: (lambda r, read=read: "Withdrawn story" in read(r)) if "feed" in path
        else (lambda r, read=read: gone_url in read(r))
        for path, read in reads.items()
    }
    for path in reads:
        first = edge.get(path)
        assert shows_gone[path](first), path
        again = edge.get(path)
        assert again.headers["X-Cache-Edge"] == "HIT", path
        # A feed reader polling with the validators gets a 304 from the edge itself.
        polled = edge.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert polled.status_code == 304, path

    services.article_unpublish(article=Article.objects.get(pk=gone.pk))

    for path in reads:
        fresh = edge.get(path)
        assert not shows_gone[path](fresh), path
        assert fresh.headers["X-Cache-Edge"] == "MISS", path
    assert "Kept story" in rss_titles(edge.get("/feed/"))
    assert f"{SITE}/articles/{kept.slug}/" in sitemap_locs(edge.get("/sitemap-articles.xml"))
    assert edge.get("/robots.txt").status_code == 200
    assert edge.get("/robots.txt").headers["X-Cache-Edge"] == "HIT"  # cacheable at the edge too
