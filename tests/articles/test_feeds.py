"""RSS and Atom feeds of the home page and each category: valid XML (standard library parser),
the newest published items, absolute URLs on SITE_URL, tags and conditional GET."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.test import Client

from articles import services
from articles.models import Article
from articles.selectors import PAGE_SIZE
from tests.factories import make_article, make_author, make_category

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"


def rss_items(response) -> list[dict]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/rss+xml; charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel.findtext("title") and channel.findtext("link").startswith("http://testsite.example/")
    return [{child.tag: child.text for child in item} for item in channel.findall("item")]


def atom_entries(response) -> list[dict]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == f"{ATOM}feed" and root.findtext(f"{ATOM}id") and root.findtext(f"{ATOM}updated")
    return [
        {"title": e.findtext(f"{ATOM}title"), "link": e.find(f"{ATOM}link").get("href"), "id": e.findtext(f"{ATOM}id"),
         "updated": e.findtext(f"{ATOM}updated"), "author": e.findtext(f"{ATOM}author/{ATOM}name")}
        for e in root.findall(f"{ATOM}entry")
    ]


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = "http://testsite.example"


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run the on_commit callbacks (the invalidations) of what happens inside, as a commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def stories():
    world, sports, author = make_category(name="World"), make_category(name="Sports"), make_author()
    newest = [
        make_article(author=author, category=world, title=f"World story {i}", ago=timedelta(minutes=i + 1))
        for i in range(PAGE_SIZE + 3)
    ]
    sport = make_article(author=author, category=sports, title="Cup final", ago=timedelta(seconds=30))
    draft = make_article(author=author, category=world, title="Secret draft", published=False)
    return world, sports, newest, sport, draft


def test_home_rss_has_the_newest_published_items(stories):
    world, sports, newest, sport, draft = stories
    items = rss_items(Client().get("/feed/"))
    expected = ["Cup final", *(a.title for a in newest)][:PAGE_SIZE]
    assert [i["title"] for i in items] == expected
    first = items[0]
    assert first["link"] == f"http://testsite.example/articles/{sport.slug}/"
    assert first["guid"] == f"http://testsite.example/api/articles/{sport.pk}/"
    assert first["category"] == "Sports" and first["pubDate"]
    assert "Secret draft" not in {i["title"] for i in items}


def test_home_atom_matches_the_rss(stories):
    client = Client()
    entries = atom_entries(client.get("/feed/atom/"))
    assert [e["title"] for e in entries] == [i["title"] for i in rss_items(client.get("/feed/"))]
    assert all(e["link"].startswith("http://testsite.example/articles/") and e["author"] for e in entries)


def test_category_feeds_hold_only_their_category(stories):
    world, sports, newest, sport, draft = stories
    client = Client()
    assert [i["title"] for i in rss_items(client.get(f"/category/{sports.slug}/feed/"))] == ["Cup final"]
    assert [e["title"] for e in atom_entries(client.get(f"/category/{sports.slug}/feed/atom/"))] == ["Cup final"]
    assert len(rss_items(client.get(f"/category/{world.slug}/feed/"))) == PAGE_SIZE
    # A 404 is kept by the shared tiers from its second sight on (the negative kind's admission).
    missing = client.get("/category/no-such-section/feed/")
    assert missing.status_code == 404 and missing["Cache-Control"] == "public, max-age=30, s-maxage=0"
    again = client.get("/category/no-such-section/feed/")
    assert again.status_code == 404 and again["Cache-Control"] == "public, max-age=30, s-maxage=30"


def test_feed_headers_kind_and_tags(stories):
    world, sports, newest, sport, draft = stories
    response = Client().get("/feed/")
    assert response["Cache-Control"] == "public, max-age=60, s-maxage=300, stale-while-revalidate=60, stale-if-error=86400"
    tags = set(response["Surrogate-Key"].split())
    assert {"feed:home", "articles", f"article:{sport.pk}", f"article:{newest[0].pk}"} <= tags
    assert f"article:{draft.pk}" not in tags
    category = set(Client().get(f"/category/{sports.slug}/feed/atom/")["Surrogate-Key"].split())
    assert category == {f"feed:category:{sports.pk}", f"category:{sports.pk}", "articles", f"article:{sport.pk}"}


@pytest.mark.parametrize("path", ["/feed/", "/feed/atom/", "/category/sports/feed/"])
def test_conditional_get_answers_304_until_the_feed_changes(stories, commit, path):
    client = Client()
    first = client.get(path)
    assert first.status_code == 200 and first["ETag"] and first["Last-Modified"]
    same = client.get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert same.status_code == 304 and same.content == b"" and same["ETag"] == first["ETag"]
    assert client.get(path, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304

    with commit():
        services.article_create(
            author=stories[3].author, category=stories[1], title="Late goal", slug="late-goal",
            status=Article.Status.PUBLISHED,
        )
    changed = client.get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    assert b"Late goal" in changed.content


def test_unpublish_and_edit_reach_the_feed_through_the_tiers(stories, commit):
    world, sports, newest, sport, draft = stories
    client = Client()
    assert "Cup final" in {i["title"] for i in rss_items(client.get("/feed/"))}
    assert client.get("/feed/")["X-Cache"].startswith("HIT")
    with commit():
        services.article_update(article=Article.objects.get(pk=newest[0].pk), data={"title": "World story, revised"})
    titles = [i["title"] for i in rss_items(client.get("/feed/"))]
    assert "World story, revised" in titles and "World story 0" not in titles
    with commit():
        services.article_unpublish(article=Article.objects.get(pk=sport.pk))
    assert "Cup final" not in {i["title"] for i in rss_items(client.get("/feed/"))}
    assert rss_items(client.get(f"/category/{sports.slug}/feed/")) == []


def test_empty_feed_keeps_its_bytes():
    """No items: a fixed date, not Django's "now", so a refill is the same body and ETag."""
    category = make_category(name="Quiet")
    client = Client()
    atom = client.get(f"/category/{category.slug}/feed/atom/")
    assert atom_entries(atom) == []
    assert ET.fromstring(atom.content).findtext(f"{ATOM}updated") == "2000-01-01T00:00:00+00:00"
    rss = client.get(f"/category/{category.slug}/feed/")
    assert rss_items(rss) == [] and b"<lastBuildDate>Sat, 01 Jan 2000 00:00:00 +0000</lastBuildDate>" in rss.content
