"""Issue 28.1, raced: readers through the app (2 workers, L1+L2) and Varnish while a run of likes
goes through the editor host (each its own POST by its own reader).

- read-your-writes at the app tiers: once a like has returned, no read sent after it shows a
  smaller like count;
- the edge: it may lag by the counts' purge window (CDN_COUNTS_PURGE_WINDOW, 1 s), never more:
  every read sent WITHIN after the last like returned shows the final count;
- a like touches only what shows counts: the home feed holding the article stays an edge HIT
  throughout, and the whole run costs one or two count purges, not one per like.

On the code before (a like invalidated `article:{id}`, one purge each) the home feed went cold
and the run wrote one outbox row per like."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.factories import make_article, make_user
from tests.freshness.conftest import HTTP_TIMEOUT, last_outbox_id, warm_edge, warm_l1

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FRESHNESS_STACK = {"l2only": False}
LIKES = 10
WINDOW = 1.0  # newsite.settings CDN_OUTBOX["COALESCE"]["article-counts:"]
WITHIN = WINDOW + 1.0  # the window, then the drain's delivery
READERS = 4


def test_a_like_run_is_read_your_writes_in_the_app_and_one_purge_at_the_edge(stack):
    from rest_framework.authtoken.models import Token

    article = make_article(title="Counts race")
    tokens = [Token.objects.create(user=make_user()).key for _ in range(LIKES)]
    detail, home = f"/api/articles/{article.pk}/", "/api/articles/"
    warm_l1(stack.readers.url, detail)
    warm_edge(stack.edge.url, detail)
    warm_edge(stack.edge.url, home)
    time.sleep(1.5)  # the setup's own purges (author, category) delivered
    first_row = last_outbox_id()

    reads: list[tuple[str, float, int]] = []  # (tier, sent, like_count)
    home_edge: list[str | None] = []
    likes: list[tuple[float, int]] = []  # (returned, like_count after it)
    stop = threading.Event()

    def reader(tier: str, base: str):
        session = requests.Session()
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            response = session.get(base + detail, timeout=HTTP_TIMEOUT)
            assert response.status_code == 200
            reads.append((tier, sent, response.json()["like_count"]))
            if tier == "edge":
                home_edge.append(session.get(base + home, timeout=HTTP_TIMEOUT).headers.get("X-Cache-Edge"))

    threads = [threading.Thread(target=reader, args=(tier, url))
               for tier, url in (("app", stack.readers.url), ("edge", stack.edge.url)) for _ in range(READERS // 2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        for n, token in enumerate(tokens, start=1):
            response = requests.post(f"{stack.editor.url}/api/articles/{article.pk}/like/",
                                     headers={"Authorization": f"Token {token}"}, timeout=HTTP_TIMEOUT)
            assert response.status_code == 201, response.text[:300]
            likes.append((time.monotonic(), n))
        last_returned = likes[-1][0]
        time.sleep(WITHIN + 0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(HTTP_TIMEOUT)

    older = [(tier, sent, count) for tier, sent, count in reads if tier == "app"
             for returned, after in likes if sent >= returned and count < after]
    assert not older, f"app reads older than a like that had returned: {older[:5]}"
    late = [(sent - last_returned, count) for tier, sent, count in reads
            if tier == "edge" and sent >= last_returned + WITHIN and count != LIKES]
    assert not late, f"edge reads without the last like {WITHIN} s after it: {late[:5]}"
    assert sum(1 for tier, sent, _ in reads if tier == "edge" and sent >= last_returned + WITHIN) >= 3
    assert home_edge and set(home_edge) == {"HIT"}, f"the home feed left the edge: {home_edge.count('MISS')} misses"
    from cdn.models import PurgeOutbox

    rows = [tags for tags in PurgeOutbox.objects.filter(pk__gt=first_row).values_list("tags", flat=True)
            if f"article-counts:{article.pk}" in tags or f"article:{article.pk}" in tags]
    assert 1 <= len(rows) <= 3, f"{len(rows)} purge rows for {LIKES} likes: {rows}"
    print(f"\n[counts] {len(reads)} reads, {LIKES} likes in {likes[-1][0] - likes[0][0]:.2f} s, {len(rows)} purge row(s); "
          f"edge reads {sum(1 for r in reads if r[0] == 'edge')}, home feed edge HIT {len(home_edge)} of {len(home_edge)}")
