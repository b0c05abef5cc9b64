"""Time as a change (issue 25), in one process against real PostgreSQL and Redis: the domain
(scheduled, live, expired; the editorial API and its validation), the visibility rule on the
surfaces that are not cached (comments, likes, views), and the capped lifetimes - with the
scheduler NOT running, a cached answer still turns at its moment, in L1, L2 and its headers.

The race of readers against the clock through several processes and Varnish is
tests/freshness/test_schedule.py."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from articles import schedule, selectors, services
from articles.models import Article, ScheduleCursor, Visibility
from caching import engine, fetcher, keys, lifetime
from tests.articles.conftest import grant
from tests.factories import make_article, make_author, make_category, make_user
from tests.support import row_locked

pytestmark = pytest.mark.django_db(transaction=True)

AHEAD = timedelta(seconds=2)


@pytest.fixture
def editor_client():
    user = make_user(username="scheduler", staff=True)
    grant(user, "add_article", "change_article", "delete_article")
    make_author(name="Sched Uler", user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def wait_past(moment) -> None:
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def directives(cache_control: str) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(r"([a-z-]+)=(\d+)", cache_control)}


def l2_ttl_ms(path_key: str) -> int:
    return engine.redis_client().pttl(keys.value_key(fetcher.current().namespace, path_key))


# --- the domain ------------------------------------------------------------------------------


def test_states_and_the_one_visibility_rule():
    now = timezone.now()
    live = make_article(ago=timedelta(minutes=5))
    scheduled = make_article(ago=-timedelta(hours=1))
    expired = make_article(ago=timedelta(hours=2), expires_at=now - timedelta(minutes=1))
    ending = make_article(ago=timedelta(hours=2), expires_at=now + timedelta(hours=1))
    draft = make_article(published=False)
    states = {a.pk: a.visibility(now) for a in (live, scheduled, expired, ending, draft)}
    assert states == {live.pk: Visibility.LIVE, scheduled.pk: Visibility.SCHEDULED, expired.pk: Visibility.EXPIRED,
                      ending.pk: Visibility.LIVE, draft.pk: Visibility.DRAFT}
    visible = set(Article.objects.visible(now).values_list("pk", flat=True))
    assert visible == {pk for pk, state in states.items() if state is Visibility.LIVE}
    assert set(selectors.published_article_ids()) == visible


def test_api_schedules_shows_the_state_and_refuses_a_take_down_before_go_live(editor_client):
    cat = make_category(name="Embargoes")
    go_live = timezone.now() + timedelta(hours=1)
    created = editor_client.post("/api/articles/", {
        "title": "Under embargo", "category_id": cat.id, "status": "published",
        "published_at": go_live.isoformat(), "expires_at": (go_live + timedelta(days=1)).isoformat(),
    }, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["state"] == "scheduled"
    article_id = created.json()["id"]
    assert Client().get(f"/api/articles/{article_id}/").status_code == 404

    refused = editor_client.patch(f"/api/articles/{article_id}/",
                                  {"expires_at": (go_live - timedelta(minutes=1)).isoformat()}, format="json")
    assert refused.status_code == 400
    assert "expires_at must be after published_at" in str(refused.json())
    assert Article.objects.get(pk=article_id).expires_at > go_live  # nothing was saved

    now_live = editor_client.patch(f"/api/articles/{article_id}/",
                                   {"published_at": timezone.now().isoformat()}, format="json")
    assert now_live.json()["state"] == "live"
    assert Client().get(f"/api/articles/{article_id}/").status_code == 200


def test_comments_likes_and_views_of_a_scheduled_article_are_404():
    article = make_article(ago=-timedelta(hours=1))
    reader = make_user()
    client = APIClient()
    client.force_authenticate(reader)
    assert client.post(f"/api/articles/{article.pk}/comments/", {"body": "early"}, format="json").status_code == 404
    assert client.post(f"/api/articles/{article.pk}/like/").status_code == 404
    assert Client().post(f"/api/articles/{article.pk}/views/").status_code == 404


# --- capped lifetimes: correct at the moment with no scheduler at all -----------------------------


def test_a_cached_404_of_a_scheduled_article_turns_into_the_story_at_its_go_live():
    article = make_article(ago=-AHEAD, title="Embargoed story")
    go_live = article.published_at
    client = Client()
    paths = (f"/api/articles/{article.pk}/", f"/articles/{article.slug}/")
    for path in paths:
        first, second = client.get(path), client.get(path)
        assert (first.status_code, second.status_code) == (404, 404), path
        assert second["X-Cache"] in ("HIT-L1", "HIT-L2"), "the 404 is cached"
        left = (go_live - timezone.now()).total_seconds()
        cc = directives(second["Cache-Control"])
        assert cc["s-maxage"] <= left and cc["max-age"] <= left and cc["stale-while-revalidate"] == 0, second["Cache-Control"]
    key = keys.response_key("api-article", {"article_id": article.pk}, {})
    assert 0 < l2_ttl_ms(key) <= (go_live - timezone.now()).total_seconds() * 1000 + 50
    wait_past(go_live)
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200 and response["X-Cache"] == "MISS", (path, response.status_code)
        assert b"Embargoed story" in response.content


def test_lists_are_capped_at_the_next_go_live_and_show_it_after():
    cat = make_category(name="Clockwork")
    make_article(category=cat, ago=timedelta(hours=1))
    coming = make_article(category=cat, ago=-AHEAD, title="Coming up", is_breaking=True)
    client = Client()
    paths = ["/api/articles/", f"/api/categories/{cat.slug}/articles/", "/", f"/category/{cat.slug}/", "/feed/",
             "/api/breaking-news/", "/sitemap-news.xml", f"/api/authors/{coming.author_id}/articles/"]
    for path in paths:
        client.get(path)
        cached = client.get(path)
        assert cached["X-Cache"] in ("HIT-L1", "HIT-L2"), path
        assert b"Coming up" not in cached.content and b"coming-up" not in cached.content, path
        assert directives(cached["Cache-Control"])["s-maxage"] <= AHEAD.total_seconds(), (path, cached["Cache-Control"])
    wait_past(coming.published_at)
    for path in paths:
        response = client.get(path)
        assert response["X-Cache"] == "MISS", path
        assert coming.slug.encode() in response.content or b"Coming up" in response.content, path


def test_a_take_down_ends_the_detail_and_the_lists_at_its_moment():
    article = make_article(ago=timedelta(hours=1), title="Short lived")
    services.article_update(article=article, data={"expires_at": timezone.now() + AHEAD})
    article.refresh_from_db()
    client = Client()
    for path in (f"/api/articles/{article.pk}/", "/api/articles/"):
        client.get(path)
        cached = client.get(path)
        assert b"Short lived" in cached.content and cached["X-Cache"] in ("HIT-L1", "HIT-L2"), path
        assert directives(cached["Cache-Control"])["s-maxage"] <= AHEAD.total_seconds(), path
    wait_past(article.expires_at)
    assert client.get(f"/api/articles/{article.pk}/").status_code == 404
    assert b"Short lived" not in client.get("/api/articles/").content


def test_a_breaking_item_leaves_its_window_at_the_moment():
    now = timezone.now()
    leaving = make_article(ago=schedule.BREAKING_WINDOW - AHEAD, is_breaking=True, title="Old breaking")
    client = Client()
    client.get("/api/breaking-news/")
    cached = client.get("/api/breaking-news/")
    assert b"Old breaking" in cached.content and cached["X-Cache"] in ("HIT-L1", "HIT-L2")
    assert directives(cached["Cache-Control"])["s-maxage"] <= AHEAD.total_seconds()
    wait_past(leaving.published_at + schedule.BREAKING_WINDOW)
    assert b"Old breaking" not in client.get("/api/breaking-news/").content
    assert now  # the window is the product's 6 h (schedule.BREAKING_WINDOW)


def test_the_view_counter_check_turns_at_go_live():
    article = make_article(ago=-AHEAD)
    assert not selectors.article_is_published(article_id=article.pk)
    wait_past(article.published_at)
    assert selectors.article_is_published(article_id=article.pk)


def test_an_uncapped_value_keeps_its_kind_ttl():
    """No moment ahead: the kind's own lifetimes, unchanged."""
    make_article(ago=timedelta(hours=1))
    cached = Client().get("/api/articles/")
    assert directives(cached["Cache-Control"])["s-maxage"] == 60
    with lifetime.measure() as measured:
        lifetime.valid_until(None)
    assert measured.until is None


# --- the scheduler ------------------------------------------------------------------------------


def test_fire_due_changes_fires_each_moment_once_and_what_was_missed_later():
    start = timezone.now()
    ScheduleCursor.objects.create(name=schedule.CURSOR, fired_through=start)
    soon = make_article(ago=-timedelta(seconds=30))
    # Its moment relative to `start`, not to when the factory ran (a user's password hashing on a
    # loaded machine took longer than the 700 ms this test leaves).
    Article.objects.filter(pk=soon.pk).update(published_at=start + timedelta(milliseconds=300),
                                              updated_at=start)  # saved before its go-live
    ending = make_article(ago=timedelta(hours=1))
    Article.objects.filter(pk=ending.pk).update(expires_at=start + timedelta(milliseconds=200), updated_at=start)
    nothing = schedule.fire_due_changes(now=start)
    assert (nothing.go_live, nothing.take_down, nothing.tags) == ([], [], 0)
    # The worker was down across both moments: the first run after fires both.
    later = start + timedelta(seconds=1)
    fired = schedule.fire_due_changes(now=later)
    assert fired.go_live == [soon.pk] and fired.take_down == [ending.pk] and fired.tags > 0
    again = schedule.fire_due_changes(now=later + timedelta(milliseconds=500))
    assert (again.go_live, again.take_down, again.tags) == ([], [], 0), "each moment fires once"


def test_a_go_live_fires_even_when_a_later_save_touched_the_article():
    """A save after the moment that changed no membership field (a typo fixed) invalidated the
    article's own tags only: the lists still need the moment's run."""
    start = timezone.now()
    ScheduleCursor.objects.create(name=schedule.CURSOR, fired_through=start)
    scheduled = make_article(ago=-timedelta(milliseconds=100))
    time.sleep(0.15)
    services.article_update(article=scheduled, data={"title": "Typo fixed after the go-live"})
    published_now = services.article_create(author=make_author(), category=make_category(), title="Now",
                                            status=Article.Status.PUBLISHED)
    fired = schedule.fire_due_changes(now=timezone.now() + timedelta(milliseconds=200))
    assert set(fired.go_live) == {scheduled.pk, published_now.pk} and fired.tags > 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_one_run_at_a_time_the_other_skips():
    ScheduleCursor.objects.create(name=schedule.CURSOR, fired_through=timezone.now())
    with row_locked(connection.settings_dict, "select 1 from articles_schedulecursor where name = %s for update",
                    [schedule.CURSOR]):
        assert schedule.fire_due_changes().skipped
    assert not schedule.fire_due_changes().skipped
