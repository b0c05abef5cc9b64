"""Sitemap index, paged sections, the Google News sitemap and robots.txt: valid XML (standard
library parser), what each lists, kinds, tags and conditional GET."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.test import Client

from articles import services
from articles.models import Article
from articles.sitemaps import ArticleSitemap
from tests.factories import make_article, make_author, make_category

pytestmark = pytest.mark.django_db

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"
SITE = "http://testsite.example"


def parse(response, root_tag: str) -> ET.Element:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == f"{SM}{root_tag}"
    return root


def locs(root: ET.Element, child: str) -> list[str]:
    return [e.findtext(f"{SM}loc") for e in root.findall(f"{SM}{child}")]


@pytest.fixture(autouse=True)
def _site(settings, monkeypatch):
    settings.SITE_URL = SITE
    monkeypatch.setattr(ArticleSitemap, "limit", 2)  # paging with a handful of rows


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def stories():
    culture, author = make_category(name="Culture"), make_author()
    old = make_article(author=author, category=culture, title="Old story", ago=timedelta(days=5))
    recent = [make_article(author=author, category=culture, title=f"Fresh {i}", ago=timedelta(hours=i + 1)) for i in range(3)]
    draft = make_article(author=author, category=culture, title="Draft", published=False)
    return culture, old, recent, draft


def test_index_lists_every_page_of_every_section(stories):
    root = parse(Client().get("/sitemap.xml"), "sitemapindex")
    assert locs(root, "sitemap") == [
        f"{SITE}/sitemap-pages.xml",
        f"{SITE}/sitemap-articles.xml",  # 4 published, 2 a page
        f"{SITE}/sitemap-articles.xml?p=2",
        f"{SITE}/sitemap-news.xml",  # 3 in the last 48 hours
        f"{SITE}/sitemap-news.xml?p=2",
    ]


def test_sections_list_pages_and_published_articles_oldest_first(stories):
    culture, old, recent, draft = stories
    client = Client()
    assert locs(parse(client.get("/sitemap-pages.xml"), "urlset"), "url") == [f"{SITE}/", f"{SITE}/category/{culture.slug}/"]
    first, second = (parse(client.get(p), "urlset") for p in ("/sitemap-articles.xml", "/sitemap-articles.xml?p=2"))
    listed = locs(first, "url") + locs(second, "url")
    assert listed == [f"{SITE}/articles/{a.slug}/" for a in (old, *reversed(recent))]
    assert all(u.findtext(f"{SM}lastmod") for u in first.findall(f"{SM}url"))
    assert client.get("/sitemap-articles.xml?p=3").status_code == 404
    assert client.get("/sitemap-articles.xml?p=zero").status_code == 400


def test_news_sitemap_holds_the_last_48_hours(stories):
    culture, old, recent, draft = stories
    client = Client()
    urls = [*parse(client.get("/sitemap-news.xml"), "urlset").findall(f"{SM}url"),
            *parse(client.get("/sitemap-news.xml?p=2"), "urlset").findall(f"{SM}url")]
    assert [u.findtext(f"{SM}loc") for u in urls] == [f"{SITE}/articles/{a.slug}/" for a in recent]
    news = urls[0].find(f"{NEWS}news")
    assert news.findtext(f"{NEWS}publication/{NEWS}name") == "newsite"
    assert news.findtext(f"{NEWS}publication/{NEWS}language") == "en"
    assert news.findtext(f"{NEWS}title") == "Fresh 0" and news.findtext(f"{NEWS}publication_date")


def test_kinds_and_tags(stories):
    culture, old, recent, draft = stories
    client = Client()
    index = client.get("/sitemap.xml")
    assert index["Cache-Control"] == "public, max-age=300, s-maxage=3600, stale-while-revalidate=300, stale-if-error=86400"
    assert set(index["Surrogate-Key"].split()) == {"articles", "categories", "news-sitemap"}
    page = client.get("/sitemap-articles.xml")
    assert set(page["Surrogate-Key"].split()) == {"articles", f"article:{old.pk}", f"article:{recent[2].pk}"}
    news = client.get("/sitemap-news.xml")
    assert news["Cache-Control"].startswith("public, max-age=60, s-maxage=300,")
    assert set(news["Surrogate-Key"].split()) == {"articles", "news-sitemap", f"article:{recent[0].pk}",
                                                  f"article:{recent[1].pk}"}
    assert client.get("/sitemap-pages.xml")["Surrogate-Key"] == "categories"
    missing = client.get("/sitemap-news.xml?p=9")
    assert missing.status_code == 404 and set(missing["Surrogate-Key"].split()) == {"articles", "categories"}


@pytest.mark.parametrize(
    ("path", "changes"),
    [("/sitemap.xml", True), ("/sitemap-news.xml", True),
     # Oldest first: the newly published article lands on page 3, page 2 is refilled with the
     # same bytes, so crawlers keep getting 304 for it.
     ("/sitemap-articles.xml?p=2", False)],
)
def test_conditional_get_answers_304_until_the_sitemap_changes(stories, commit, path, changes):
    culture, old, recent, draft = stories
    client = Client()
    first = client.get(path)
    assert first.status_code == 200 and first["ETag"] and first["Last-Modified"]
    assert client.get(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert client.get(path, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304
    with commit():
        services.article_publish(article=Article.objects.get(pk=draft.pk))  # a 5th article: a 3rd page
    after = client.get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert after["X-Cache"] == "MISS"  # invalidated and refilled either way
    if changes:
        assert after.status_code == 200 and after["ETag"] != first["ETag"]
    else:
        assert after.status_code == 304 and after["ETag"] == first["ETag"]


def test_unpublish_leaves_the_sitemaps(stories, commit):
    culture, old, recent, draft = stories
    client = Client()
    url = f"{SITE}/articles/{recent[0].slug}/"
    assert url in locs(parse(client.get("/sitemap-news.xml"), "urlset"), "url")
    with commit():
        services.article_unpublish(article=Article.objects.get(pk=recent[0].pk))
    news = locs(parse(client.get("/sitemap-news.xml"), "urlset"), "url")
    articles = [loc for p in (1, 2) for loc in locs(parse(client.get(f"/sitemap-articles.xml?p={p}"), "urlset"), "url")]
    assert url not in news and url not in articles and len(articles) == 3


def test_robots_txt_points_at_the_sitemaps():
    response = Client().get("/robots.txt")
    assert response.status_code == 200 and response["Content-Type"] == "text/plain; charset=utf-8"
    lines = response.content.decode().splitlines()
    assert "User-agent: *" in lines and "Disallow: /admin/" in lines
    assert f"Sitemap: {SITE}/sitemap.xml" in lines and f"Sitemap: {SITE}/sitemap-news.xml" in lines
    assert "Surrogate-Key" not in response and response["Cache-Control"].startswith("public, max-age=3600, s-maxage=86400")
