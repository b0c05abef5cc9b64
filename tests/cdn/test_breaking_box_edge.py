"""The breaking box through the real edge (issue 31, docs/breaking-box.md): reader processes
poll /api/breaking-news/ through Varnish as articles/static/articles/breaking-box.js does while an
editor publishes a breaking story through the API; what each may see after the POST returned. And
the edge rule that keeps the polls coalesced when the app's answer is already stale on arrival."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.articles.conftest import grant
from tests.factories import make_article, make_author, make_category, make_user
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
S_MAXAGE = 30  # the breaking_news TTL at the edge (SPEC 4: public, max-age=0, s-maxage=30)


def polls(path: Path) -> list[dict]:
    """A reader's complete lines so far (tests/articles/breaking_poller.py)."""
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_breaking_publish_reaches_every_polling_reader_through_the_edge(edge, live_server, tmp_path):
    """Four reader processes poll the box through Varnish (If-None-Match, every 0.3 s) while an
    editor publishes a breaking story through the API. After the POST returned, no poll sent
    later may miss it (the write purged the edge before answering), and every reader has it
    within its interval + s-maxage (the bound even if a purge were lost)."""
    interval = 0.3
    make_article(title="Earlier alert", is_breaking=True)
    category = make_category(name="World")
    editor = make_user(username="desk", staff=True)
    grant(editor, "add_article")
    make_author(name="News Desk", user=editor)
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


def test_a_box_answer_already_stale_on_arrival_is_still_shared_by_the_polls(origin, varnish):
    """The app may answer the edge from a copy whose Age reached s-maxage (its own
    stale-while-revalidate). Varnish's built-in VCL would make the URL hit-for-miss for 120 s and
    send every poll of every open page to the app; default.vcl keeps it briefly instead, so
    readers polling together cost the app one request."""
    path = "/api/breaking-news/"
    origin.page(path, '{"results": []}', tags=["breaking"],
                cache_control="public, max-age=0, s-maxage=30, stale-while-revalidate=10, stale-if-error=600",
                headers={"Age": "31", "ETag": '"box-1"'})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: varnish.get(path), range(8)))
    assert all(a.status_code == 200 for a in answers)
    assert varnish.get(path, headers={"If-None-Match": '"box-1"'}).status_code == 304
    assert origin.hits(path) == 1
