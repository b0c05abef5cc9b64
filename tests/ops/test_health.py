"""/health/ and /health/cache/: real database, a real redis-server the test stops and starts."""

from __future__ import annotations

import json
import time
from collections import deque
from datetime import timedelta

import pytest
from django.utils import timezone

import caching
import caching.engine
import caching.fetcher
from cdn.models import PurgeOutbox
from newsite.ops import hitratios

pytestmark = pytest.mark.django_db


def test_health_ok_and_never_cached(client):
    response = client.get("/health/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "broker"}
    assert "no-store" in response["Cache-Control"]
    assert "Surrogate-Key" not in response and "X-Cache" not in response


@pytest.mark.slow
def test_health_503_names_redis_while_it_is_down(client, settings, private_redis):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": private_redis.url}}
    caching.engine.reset()  # (the settings signal resets it too: be explicit, it is the point)
    try:
        assert client.get("/health/").status_code == 200

        private_redis.stop()
        response = client.get("/health/")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "fail"
        assert body["failed"] == ["redis"]
        assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
        assert body["checks"]["redis"]["error"]
        assert "no-store" in response["Cache-Control"]

        private_redis.start()
        response = client.get("/health/")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "ok"
    finally:
        caching.engine.reset()


def test_health_503_names_the_broker(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


def test_health_cache_reports_tiers_prefixes_and_backlog(client):
    def load():
        return {"n": 1}

    for _ in range(3):
        caching.fetch("opstest:1", load, kind="article", tags=["opstest"])  # miss, then L1 hits
    hitratios.sample()
    # A backlog of known size: two pending purge rows (one of them a minute old) and a dead one.
    minute_ago = timezone.now() - timedelta(seconds=60)
    PurgeOutbox.objects.create(tags=["opstest"], created_at=minute_ago)
    PurgeOutbox.objects.create(tags=["opstest"])
    PurgeOutbox.objects.create(tags=["opstest"], status=PurgeOutbox.Status.DEAD)
    response = client.get("/health/cache/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = json.loads(response.content)
    since_start = body["hit_ratio"]["process_since_start"]
    assert since_start["prefixes"]["opstest"]["l1"]["hit"] >= 2
    assert since_start["prefixes"]["opstest"]["l2"]["miss"] >= 1
    assert {"last_1m", "last_5m", "last_15m"} <= {k.removeprefix("process_") for k in body["hit_ratio"]}
    assert body["l1"]["entries"] >= 1 and body["l1"]["bytes"] > 0
    assert body["breaker"]["l2"]["state"] == "closed" and body["breaker"]["db"]["state"] == "closed"
    assert (body["outbox"]["pending"], body["outbox"]["dead"]) == (2, 1)
    assert 60 <= body["outbox"]["oldest_pending_age_seconds"] < 3600
    assert body["warm_cache"] == "never" or "paths" in body["warm_cache"]


def test_windows_count_only_what_happened_inside_them(monkeypatch):
    def load():
        return 1

    monkeypatch.setattr(hitratios, "_samples", deque(maxlen=100))
    caching.fetch("opswin:1", load, kind="article")  # before the window: one miss
    now = time.monotonic()
    hitratios.sample(now=now - 120)  # pretend these counters were sampled two minutes ago
    caching.fetch("opswin:1", load, kind="article")
    caching.fetch("opswin:1", load, kind="article")  # inside the window: two L1 hits

    last_minute = hitratios.window(60, now=now)
    assert last_minute["prefixes"]["opswin"]["l1"] == {"hit": 2, "miss": 0, "hit_ratio": 1.0}
    assert last_minute["seconds"] == 120.0  # the newest sample at least a minute old
    last_15 = hitratios.window(900, now=now)
    assert last_15["seconds"] == 120.0  # not sampled that far back: says how long it covers
