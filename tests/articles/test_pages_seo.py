"""What crawlers, link previews and feed readers read in the HTML pages: title, description,
canonical, OpenGraph/Twitter, JSON-LD NewsArticle, the hero image's box, dates in the site's time
zone, prev/next, feed autodiscovery, the 404 page; and every page is valid HTML: html5lib's
strict parser (the WHATWG parsing algorithm, raising on any parse error) plus a few of the W3C
checker's document rules that a parser does not enforce."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, timedelta

import html5lib
import pytest
from django.test import Client
from django.utils import timezone

from articles import services
from articles.models import Article
from articles.selectors import PAGE_SIZE
from tests.factories import make_article, make_author, make_category

pytestmark = pytest.mark.django_db

SITE = "http://testsite.example"
XHTML = "{http://www.w3.org/1999/xhtml}"


def valid_document(content: bytes):
    """The parsed tree of a page that html5lib parses strictly (any parse error raises) and that
    keeps the document rules below; returns the tree (xml.etree, XHTML namespace)."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True)
    tree = parser.parse(content)
    html = tree
    assert html.get("lang"), "<html lang> is required"
    head = html.find(f"{XHTML}head")
    assert (head.findtext(f"{XHTML}title") or "").strip(), "a non-empty <title>"
    assert head.find(f"{XHTML}meta[@charset]") is not None and head.find(f"{XHTML}meta[@name='viewport']") is not None
    ids = Counter(e.get("id") for e in tree.iter() if e.get("id"))
    assert not [i for i, n in ids.items() if n > 1], f"duplicate ids: {ids}"
    for img in tree.iter(f"{XHTML}img"):
        assert img.get("alt") is not None and img.get("src"), "an <img> needs src and alt"
        assert img.get("width", "").isdigit() and img.get("height", "").isdigit(), "an <img> needs its box"
    for time in tree.iter(f"{XHTML}time"):
        assert time.get("datetime"), "a <time> needs a machine-readable datetime"
    assert len(list(tree.iter(f"{XHTML}h1"))) == 1, "one <h1> a page"
    for link in head.iter(f"{XHTML}link"):
        assert link.get("rel") and link.get("href")
    return tree


def head_meta(tree) -> dict:
    head = tree.find(f"{XHTML}head")
    found = {}
    for meta in head.iter(f"{XHTML}meta"):
        name = meta.get("property") or meta.get("name")
        if name:
            found[name] = meta.get("content")
    return found


def links(tree, rel: str) -> list[dict]:
    return [dict(link.attrib) for link in tree.find(f"{XHTML}head").iter(f"{XHTML}link") if link.get("rel") == rel]


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = SITE
    settings.TIME_ZONE = "Europe/Paris"  # UTC+1 in winter, the dates below are in December


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def story():
    published = timezone.now().replace(month=12, day=1, hour=16, minute=28, second=0, microsecond=0)
    article = make_article(
        category=make_category(name="Science"), title="Comet <returns> & shines", hero_image_url="/static/articles/hero-placeholder.jpg",
    )
    Article.objects.filter(pk=article.pk).update(published_at=published, updated_at=published + timedelta(minutes=1))
    return Article.objects.get(pk=article.pk)


def test_article_page_metadata(story):
    tree = valid_document(Client().get(f"/articles/{story.slug}/").content)
    title = tree.find(f"{XHTML}head").findtext(f"{XHTML}title")
    assert title == "Comet <returns> & shines — newsite"
    meta = head_meta(tree)
    canonical = f"{SITE}/articles/{story.slug}/"
    assert meta["description"] == story.excerpt
    assert links(tree, "canonical")[0]["href"] == canonical
    assert meta["og:type"] == "article" and meta["og:url"] == canonical and meta["og:title"] == story.title
    assert meta["og:image"] == f"{SITE}/static/articles/hero-placeholder.jpg"
    assert (meta["og:image:width"], meta["og:image:height"]) == ("1200", "675")
    assert meta["twitter:card"] == "summary_large_image" and meta["twitter:image"] == meta["og:image"]
    assert meta["article:section"] == "Science" and meta["article:published_time"].startswith(story.published_at.date().isoformat())

    scripts = [s for s in tree.iter(f"{XHTML}script") if s.get("type") == "application/ld+json"]
    ld = json.loads(scripts[0].text)
    assert ld["@type"] == "NewsArticle" and ld["headline"] == story.title and ld["mainEntityOfPage"] == canonical
    assert ld["author"][0]["name"] == story.author.name and ld["image"] == [meta["og:image"]]
    assert "<returns>" not in scripts[0].text  # escaped inside <script>

    hero = next(tree.iter(f"{XHTML}img"))
    assert hero.get("src") == "/static/articles/hero-placeholder.jpg"
    alternates = {(link["type"], link["href"]) for link in links(tree, "alternate")}
    assert ("application/rss+xml", "/feed/") in alternates
    assert ("application/atom+xml", f"/category/{story.category.slug}/feed/atom/") in alternates


def test_dates_are_human_in_the_site_time_zone_and_updated_shows_when_edited(story, commit):
    client = Client()
    tree = valid_document(client.get(f"/articles/{story.slug}/").content)
    times = list(tree.iter(f"{XHTML}time"))
    assert len(times) == 1, "saved a minute after publication: not an edit"
    utc = story.published_at.astimezone(UTC)
    assert times[0].get("datetime") == utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert times[0].text == f"1 December {utc.year}, 17:28 CET"  # 16:28 UTC in Paris

    with commit():
        services.article_update(article=story, data={"body": "A correction."})
    tree = valid_document(client.get(f"/articles/{story.slug}/").content)
    times = list(tree.iter(f"{XHTML}time"))
    assert len(times) == 2 and "Updated" in "".join(tree.find(f"{XHTML}body").itertext())


def test_article_without_hero_shows_the_local_placeholder():
    article = make_article(title="No picture")
    hero = next(valid_document(Client().get(f"/articles/{article.slug}/").content).iter(f"{XHTML}img"))
    assert hero.get("src") == "/static/articles/hero-placeholder.jpg"
    assert (hero.get("width"), hero.get("height")) == ("1200", "675")


def test_lists_have_canonical_prev_next_and_feeds():
    category, author = make_category(name="Economy"), make_author()
    for i in range(2 * PAGE_SIZE + 1):
        make_article(author=author, category=category, ago=timedelta(minutes=i + 1))
    client = Client()
    first = valid_document(client.get("/").content)
    assert links(first, "canonical")[0]["href"] == f"{SITE}/"
    assert not links(first, "prev") and links(first, "next")[0]["href"] == "/?page=2"
    middle = valid_document(client.get(f"/category/{category.slug}/?page=2").content)
    assert links(middle, "canonical")[0]["href"] == f"{SITE}/category/{category.slug}/?page=2"
    assert links(middle, "prev")[0]["href"] == f"/category/{category.slug}/"
    assert links(middle, "next")[0]["href"] == f"/category/{category.slug}/?page=3"
    anchors = {a.get("rel"): a.get("href") for a in middle.iter(f"{XHTML}a") if a.get("rel")}
    assert anchors == {"prev": f"/category/{category.slug}/", "next": f"/category/{category.slug}/?page=3"}
    last = valid_document(client.get(f"/category/{category.slug}/?page=3").content)
    assert links(last, "prev") and not links(last, "next")
    feeds = {link["href"] for link in links(middle, "alternate")}
    assert feeds == {f"/category/{category.slug}/feed/", f"/category/{category.slug}/feed/atom/", "/feed/", "/feed/atom/"}


@pytest.mark.parametrize("path", ["/articles/no-such-story/", "/category/no-such-section/", "/nowhere/"])
def test_a_proper_404_page(path):
    response = Client().get(path)
    assert response.status_code == 404 and response["Content-Type"] == "text/html; charset=utf-8"
    tree = valid_document(response.content)
    assert head_meta(tree)["robots"] == "noindex"
    assert next(tree.iter(f"{XHTML}h1")).text == "Page not found"
    assert any(a.get("href") == "/" for a in tree.iter(f"{XHTML}a"))


def test_invalid_html_is_caught():
    """The check itself: a stray end tag and a misnested element fail it."""
    with pytest.raises(html5lib.html5parser.ParseError):
        valid_document(b"<!DOCTYPE html><html lang=en><head><title>x</title></head><body><p><div></p></div></body></html>")
