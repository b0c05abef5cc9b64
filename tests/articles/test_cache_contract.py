"""The cache contract of articles/invalidation.py: its read side (the tags each public response
carries) against its write side (the tags each change invalidates), for every public endpoint.

One world, every kind of write of the tag matrix in turn. Around each write, every watched path
is answered fresh (cache off, so the body is what the view would store now): if the write
changed a path's answer, the tags it invalidated must meet the tags that answer carried before
(its Surrogate-Key, a cached 404's included), or the old version would outlive the write. Also:
every public URL of the URLconf is watched (a new endpoint fails here until it is added), every
watched path changes at least once (no vacuous check), and every kind of tag a response carries
is one that some write invalidates. A reader's action (a comment, a like) must touch nothing
whose answer it did not change (issue 28.1: a like/unlike loop must not keep the lists cold).

Time is a write too: the clock reaching a scheduled go-live, a take-down or a window edge
(breaking 6 h, news sitemap 48 h) changes answers, and what articles/schedule.py fires at that
moment must meet their tags in the same way.
"""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from PIL import Image

from articles import schedule, services
from articles.models import Article, Author, Category, Comment, ScheduleCursor
from articles.sitemaps import ArticleSitemap
from caching.http import policy_of
from caching.invalidation import on_invalidate
from newsite.ops import canary
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db

MISSING_AUTHOR_ID = 987_654
NEW_ARTICLE_SLUG = "coming-soon"
MOVED_ARTICLE_SLUG = "contract-story-moved"
NEW_CATEGORY_SLUG = "new-section"


def public_url_names(patterns=None) -> set[str]:
    """Names of every URL whose view is a cached public read (caching.http.cache_public)."""
    names = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            names |= public_url_names(entry.url_patterns)
        elif isinstance(entry, URLPattern) and policy_of(entry.callback) is not None:
            names.add(entry.name)
    return names


@pytest.fixture
def world():
    c1, c2 = make_category(name="World"), make_category(name="Sports")
    au1, au2 = make_author(name="Ada Writer"), make_author(name="Bo Writer")
    a = make_article(author=au1, category=c1, title="Contract story", is_breaking=True, ago=timedelta(minutes=10))
    b = make_article(author=au2, category=c1, title="Second story", ago=timedelta(hours=2))
    draft = make_article(author=au1, category=c1, title="Draft story", published=False)
    commenter = make_user()
    Comment.objects.create(article=a, user=commenter, body="First")
    ScheduleCursor.objects.create(name=schedule.CURSOR, fired_through=timezone.now())
    return SimpleNamespace(c1=c1, c2=c2, au1=au1, au2=au2, a=a, b=b, draft=draft, reader=make_user(), moment=None,
                           commenter=commenter)


def watched_paths(w) -> list[str]:
    return [
        "/api/articles/",
        f"/api/articles/{w.a.id}/",
        f"/api/articles/{w.b.id}/",
        f"/api/articles/{w.draft.id}/",  # a 404 until published
        "/api/articles/trending/",
        "/api/breaking-news/",
        "/api/categories/",
        f"/api/categories/{w.c1.slug}/articles/",
        f"/api/categories/{w.c2.slug}/articles/",
        f"/api/categories/{NEW_CATEGORY_SLUG}/articles/",
        f"/api/authors/{w.au1.id}/",
        f"/api/authors/{w.au2.id}/",
        f"/api/authors/{MISSING_AUTHOR_ID}/",
        f"/api/authors/{w.au1.id}/articles/",
        f"/api/authors/{w.au2.id}/articles/",
        f"/api/authors/{MISSING_AUTHOR_ID}/articles/",
        "/api/search/?q=contract",
        "/",
        f"/articles/{w.a.slug}/",
        f"/articles/{MOVED_ARTICLE_SLUG}/",
        f"/articles/{w.b.slug}/",
        f"/articles/{w.draft.slug}/",
        f"/articles/{NEW_ARTICLE_SLUG}/",
        f"/category/{w.c1.slug}/",
        f"/category/{w.c2.slug}/",
        f"/category/{NEW_CATEGORY_SLUG}/",
        "/feed/",
        "/feed/atom/",
        f"/category/{w.c1.slug}/feed/",
        f"/category/{w.c2.slug}/feed/",
        f"/category/{NEW_CATEGORY_SLUG}/feed/",
        f"/category/{w.c1.slug}/feed/atom/",
        f"/category/{w.c2.slug}/feed/atom/",
        "/sitemap.xml",
        "/sitemap-pages.xml",
        "/sitemap-articles.xml",
        "/sitemap-articles.xml?p=2",  # a 404 until a third article is published
        "/sitemap-news.xml",
        "/health/canary/",  # the freshness canary (newsite/ops/canary.py): a 404 until written
    ]


# Public endpoints whose answer depends on no data: no write may change them, and they carry no
# tag (they expire by their kind's TTL).
CONSTANT_PATHS = ["/robots.txt"]


def _edit(article, **data):
    services.article_update(article=Article.objects.get(pk=article.pk), data=data)


MOMENT_AHEAD = timedelta(milliseconds=400)


def _ahead(w):
    """A moment just ahead, for a step that lets the clock reach it (`_clock`)."""
    w.moment = timezone.now() + MOMENT_AHEAD
    return w.moment


def _clock(w):
    """Time passes the step's moment; then the scheduler's run fires it (articles/schedule.py)."""
    time.sleep(max(0.0, (w.moment - timezone.now()).total_seconds()) + 0.05)
    schedule.fire_due_changes()


def _near_window_end(w, window: timedelta, **extra):
    """A live article that leaves `window` at the step's moment."""
    return services.article_create(author=w.au2, category=w.c2, title="Leaving soon", status=Article.Status.PUBLISHED,
                                   published_at=_ahead(w) - window, **extra)


def _rename_user(user, username):
    user = type(user).objects.get(pk=user.pk)
    user.username = username
    user.save()


def _new_hero_image(article):
    """An editor uploads a picture (issue 32): the page, the detail and every list show new URLs."""
    picture = io.BytesIO()
    Image.new("RGB", (640, 360), (12, 140, 90)).save(picture, "PNG")
    _edit(article, hero_image=SimpleUploadedFile("hero.png", picture.getvalue(), content_type="image/png"))


def _rename(obj, name):
    obj = type(obj).objects.get(pk=obj.pk)
    obj.name = name
    obj.save()


# Every kind of write of the tag matrix (articles/invalidation.py), in the order they run.
WRITES = [
    ("published article: body edited", lambda w: _edit(w.a, body="A new body.")),
    ("published article: title edited", lambda w: _edit(w.a, title="Contract story, revised")),
    ("published article: hero image uploaded", lambda w: _new_hero_image(w.a)),
    ("published article: slug edited", lambda w: _edit(w.a, slug=MOVED_ARTICLE_SLUG)),
    ("published article: moved to another category", lambda w: _edit(w.a, category=w.c2)),
    ("published article: given to another author", lambda w: _edit(w.a, author=w.au2)),
    ("published article: published_at moved", lambda w: _edit(w.b, published_at=w.b.published_at - timedelta(days=1))),
    ("published article: no longer breaking", lambda w: _edit(w.a, is_breaking=False)),
    ("published article: made breaking", lambda w: _edit(w.b, is_breaking=True)),
    ("draft: edited", lambda w: _edit(w.draft, title="Still a draft")),
    ("draft: scheduled", lambda w: _edit(w.draft, status=Article.Status.PUBLISHED, published_at=_ahead(w))),
    ("clock: the scheduled draft goes live", _clock),
    ("published article: given a take-down time", lambda w: _edit(w.draft, expires_at=_ahead(w))),
    ("clock: it is taken down", _clock),
    ("breaking article 6 h old in a moment", lambda w: _near_window_end(w, schedule.BREAKING_WINDOW, is_breaking=True)),
    ("clock: it leaves the breaking window", _clock),
    ("article 48 h old in a moment", lambda w: _near_window_end(w, schedule.NEWS_SITEMAP_WINDOW)),
    ("clock: it leaves the news sitemap", _clock),
    ("draft: published", lambda w: services.article_publish_now(article=Article.objects.get(pk=w.draft.pk))),
    (
        "article created, published, under a slug readers asked for",
        lambda w: services.article_create(
            author=w.au1, category=w.c1, title="Contract newcomer", slug=NEW_ARTICLE_SLUG,
            status=Article.Status.PUBLISHED,
        ),
    ),
    ("comment created", lambda w: services.comment_create(article=w.a, user=w.reader, body="Hello")),
    ("comment deleted", lambda w: Comment.objects.filter(article=w.a).first().delete()),
    ("like created", lambda w: services.like_create(article=w.a, user=w.reader)),
    ("like deleted", lambda w: services.like_delete(article=w.a, user=w.reader)),
    ("author renamed", lambda w: _rename(w.au1, "Ada Renamed")),
    (
        "author created under an id readers asked for",
        lambda w: Author.objects.create(pk=MISSING_AUTHOR_ID, user=make_user(), name="Newcomer"),
    ),
    ("category renamed", lambda w: _rename(w.c1, "World News")),
    (
        "category created under a slug readers asked for",
        lambda w: Category.objects.create(name="New section", slug=NEW_CATEGORY_SLUG),
    ),
    ("follow created", lambda w: services.follow_create(user=w.reader, author=w.au1)),
    ("profile edited", lambda w: services.profile_update(user=w.reader, data={"first_name": "Reader"})),
    ("commenter renamed", lambda w: _rename_user(w.commenter, "renamed-commenter")),
    ("freshness canary written", lambda w: canary.write_canary()),
    ("published article: unpublished", lambda w: services.article_unpublish(article=Article.objects.get(pk=w.b.pk))),
    ("article deleted", lambda w: services.article_delete(article=Article.objects.get(pk=w.a.pk))),
]


# Writes any reader can make: they may touch only what shows what they changed.
# (A username change is the admin's: it touches the JSON detail too, which shows no names.)
READER_ACTIONS = {"comment created", "comment deleted", "like created", "like deleted", "follow created",
                  "profile edited"}


def answer(client, path) -> tuple[int, bytes, frozenset[str]]:
    response = client.get(path)
    assert response.status_code in (200, 404), (path, response.status_code)
    return response.status_code, response.content, frozenset(response.get("Surrogate-Key", "").split())


def family(tag: str) -> str:
    """`article:12` -> `article:*`, `article-slug:x` -> `article-slug:*`; constant tags as is."""
    if tag.startswith("article-slug:"):
        return "article-slug:*"
    return re.sub(r":\d+$", ":*", tag)


@pytest.fixture
def invalidated():
    """Every tag set the write side invalidates (caching's hook, called inside the transaction)."""
    seen: list[frozenset[str]] = []
    on_invalidate.append(seen.append)
    yield seen
    on_invalidate.remove(seen.append)


def test_every_write_that_changes_a_public_answer_invalidates_one_of_its_tags(world, invalidated, settings, monkeypatch):
    settings.NEWSITE_CACHE = {**settings.NEWSITE_CACHE, "ENABLED": False}  # answers fresh from the views
    # Two articles a sitemap page: publishing the draft adds a page to the index.
    monkeypatch.setattr(ArticleSitemap, "limit", 2)
    client = Client()
    paths = watched_paths(world)
    assert {resolve(p.split("?")[0]).url_name for p in paths + CONSTANT_PATHS} == public_url_names(), (
        "every public endpoint must be watched here (and tagged on both sides)"
    )
    constant = {path: answer(client, path) for path in CONSTANT_PATHS}
    assert all(status == 200 and not tags for status, _, tags in constant.values()), constant
    before = {path: answer(client, path) for path in paths}
    emitted = {tag for _, _, tags in before.values() for tag in tags}
    changed_once, written, missed, overreach = set(), set(), [], []
    for name, write in WRITES:
        invalidated.clear()
        write(world)
        touched = frozenset().union(*invalidated)
        written |= touched
        for path in paths:
            after = answer(client, path)
            emitted |= after[2]
            if after[:2] != before[path][:2]:
                changed_once.add(path)
                if not touched & before[path][2]:
                    missed.append(f"{name}: {path} changed, carried {sorted(before[path][2])}, write touched {sorted(touched)}")
            elif name in READER_ACTIONS and touched & before[path][2]:
                overreach.append(f"{name}: {path} did not change, but the write touched {sorted(touched & before[path][2])}")
            before[path] = after
    assert {path: answer(client, path) for path in CONSTANT_PATHS} == constant, "a constant endpoint changed"
    assert not missed, "\n".join(missed)
    assert not overreach, "\n".join(overreach)
    assert changed_once == set(paths), f"never changed by any write: {sorted(set(paths) - changed_once)}"
    uncovered = {family(t) for t in emitted} - {family(t) for t in written}
    assert not uncovered, f"tags no write invalidates: {sorted(uncovered)}"
