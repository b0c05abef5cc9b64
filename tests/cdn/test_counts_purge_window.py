"""Issue 28.1: a like/unlike loop on a hot article costs one CDN purge per window, not one per
like. Each like still changes the app tiers at once (the detail's count in L1/L2 is right after
the write returns); only the edge's purge of `article-counts:{id}` waits up to
CDN_OUTBOX["COALESCE"]'s window and is merged with the same purge asked for meanwhile. Real
PostgreSQL (the merge locks the waiting row: FOR UPDATE SKIP LOCKED) and Redis."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from articles import services
from cdn.backends import dummy
from cdn.models import PurgeOutbox
from cdn.outbox import drain_outbox
from tests.factories import make_article, make_user
from tests.support import require_postgresql, row_locked

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 4.0  # long enough for the loop below on a loaded machine (its likes take ~50 ms each)


@pytest.fixture(autouse=True)
def counts_window(settings):
    require_postgresql()
    settings.CDN_OUTBOX = {**settings.CDN_OUTBOX, "COALESCE": {"article-counts:": WINDOW}}
    settings.CDN_BACKENDS = {"default": {"BACKEND": "cdn.backends.dummy.DummyBackend"}}


def rows_with(tag: str) -> list[PurgeOutbox]:
    return [row for row in PurgeOutbox.objects.order_by("pk") if tag in row.tags]


def test_a_like_loop_is_one_purge_per_window_and_every_like_shows_at_once():
    article = make_article()
    counts_tag = f"article-counts:{article.pk}"
    readers = [make_user() for _ in range(6)]
    client = Client()
    path = f"/api/articles/{article.pk}/"
    drain_outbox()  # what making the article and its readers asked for
    for n, reader in enumerate(readers, start=1):
        client.get(path)  # cached before each like
        services.like_create(article=article, user=reader)
        assert client.get(path).json()["like_count"] == n, "the app tiers changed at the write"
    services.like_delete(article=article, user=readers[0])
    assert client.get(path).json()["like_count"] == len(readers) - 1
    rows = rows_with(counts_tag)
    assert len(rows) == 1 and rows[0].tags == [counts_tag], [(r.pk, r.tags) for r in rows]

    before = len(dummy.PURGED)
    assert drain_outbox().delivered == [], "not sent before its window ends"
    time.sleep(max(0.0, (rows[0].next_attempt_at - timezone.now()).total_seconds()) + 0.1)
    assert drain_outbox().delivered == [rows[0].pk]
    sent = [items for _, kind, items in dummy.PURGED[before:] if kind == "tags"]
    assert sent == [[counts_tag]], "one purge for the whole loop"


def test_an_edit_is_never_held_back_by_the_window():
    article = make_article()
    reader = make_user()
    drain_outbox()
    services.like_create(article=article, user=reader)
    services.article_update(article=article, data={"title": "Edited"})
    edit_rows = [row for row in rows_with(f"article:{article.pk}") if row.status == PurgeOutbox.Status.PENDING]
    assert len(edit_rows) == 1 and edit_rows[0].next_attempt_at <= edit_rows[0].created_at
    assert drain_outbox().delivered == [edit_rows[0].pk]


def test_a_row_another_writer_holds_is_not_waited_for():
    """The merge takes the waiting row with SKIP LOCKED: while another transaction holds it, a
    like writes a row of its own at once instead of queueing behind that lock."""
    article = make_article()
    services.like_create(article=article, user=make_user())
    [waiting] = rows_with(f"article-counts:{article.pk}")
    with row_locked(connection.settings_dict, "select 1 from cdn_purgeoutbox where id = %s for update", [waiting.pk]):
        # Waiting for that lock would block here until the holder gives up (30 s) and then join
        # the row: one row, not two.
        services.like_create(article=article, user=make_user())
    assert len(rows_with(f"article-counts:{article.pk}")) == 2
