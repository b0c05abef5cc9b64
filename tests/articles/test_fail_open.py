"""Fail-open: Redis down -> served from L1 and the database; database down -> cached entries
still served, the rest a fast 503 with Retry-After. Checked in a second process whose Redis or
database points at a closed port."""

import json
import socket

import pytest
from django.test import Client

from tests.articles.reader_process import start_reader, stop_reader
from tests.factories import make_article


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_database_down_serves_cached_entries_and_503s_the_rest():
    article = make_article(title="Cached before the outage")
    other = make_article(title="Never cached")
    Client().get(f"/api/articles/{article.id}/")  # into L2
    proc, get = start_reader(DATABASE_URL=f"postgres://127.0.0.1:{closed_port()}/nothing")
    try:
        cached = get(f"/api/articles/{article.id}/")
        assert cached["status"] == 200 and cached["x_cache"] == "HIT-L2"
        assert json.loads(cached["body"])["title"] == "Cached before the outage"
        for _ in range(3):
            missing = get(f"/api/articles/{other.id}/")
            assert missing["status"] == 503
            assert json.loads(missing["body"])["error"] == "unavailable"
    finally:
        stop_reader(proc)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redis_down_serves_from_the_database_and_l1():
    article = make_article(title="Served without Redis")
    proc, get = start_reader(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    try:
        statuses = [get(f"/api/articles/{article.id}/") for _ in range(10)]
        assert all(s["status"] == 200 for s in statuses)
        assert json.loads(statuses[-1]["body"])["title"] == "Served without Redis"
        assert get("/api/articles/").get("status") == 200
    finally:
        stop_reader(proc)
