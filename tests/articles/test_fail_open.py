"""Fail-open: Redis down -> served from L1 and the database; database down -> cached entries
still served, the rest a fast 503 with Retry-After. Checked in a second process whose Redis or
database points at a closed port."""

import json

import pytest
from django.test import Client

from tests.articles.reader_process import start_reader, stop_reader
from tests.factories import make_article
from tests.support import free_port  # a port nothing listens on


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_database_down_serves_cached_entries_and_503s_the_rest():
    article = make_article(title="Cached before the outage")
    other = make_article(title="Never cached")
    Client().get(f"/api/articles/{article.id}/")  # into L2
    proc, get = start_reader(DATABASE_URL=f"postgres://127.0.0.1:{free_port()}/nothing")
    try:
        cached = get(f"/api/articles/{article.id}/")
        assert cached["status"] == 200 and cached["x_cache"] == "HIT-L2"
        assert json.loads(cached["body"])["title"] == "Cached before the outage"
        for _ in range(3):
            missing = get(f"/api/articles/{other.id}/")
            assert missing["status"] == 503
            assert json.loads(missing["body"])["error"] == "unavailable"
            assert missing["retry_after"] is not None and int(missing["retry_after"]) > 0
            assert missing["x_cache"] not in ("HIT-L1", "HIT-L2", "STALE"), "a 503 is never served from a tier"
        again = get(f"/api/articles/{article.id}/")  # the cached entry is still served
        assert again["status"] == 200 and again["x_cache"] in ("HIT-L1", "HIT-L2")
        assert json.loads(again["body"])["title"] == "Cached before the outage"
    finally:
        stop_reader(proc)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redis_down_serves_from_the_database_and_l1():
    article = make_article(title="Served without Redis")
    proc, get = start_reader(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        responses = [get(f"/api/articles/{article.id}/") for _ in range(10)]
        assert [r["status"] for r in responses] == [200] * 10
        assert {json.loads(r["body"])["title"] for r in responses} == {"Served without Redis"}
        # The first read loads from the database; L1 serves the rest while L2 is unreachable.
        assert responses[0]["x_cache"] == "MISS"
        assert [r["x_cache"] for r in responses[1:]] == ["HIT-L1"] * 9
        feed = get("/api/articles/")
        assert feed["status"] == 200 and feed["x_cache"] == "MISS"
        assert [a["title"] for a in json.loads(feed["body"])["results"]] == ["Served without Redis"]
    finally:
        stop_reader(proc)
