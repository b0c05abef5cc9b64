"""Issue 16.2: a Redis that answers but refuses (OOM under maxmemory + noeviction, READONLY
during a failover) must not turn into HTTP 500s: the request is served from L1 and the loader,
and the breaker and <prefix>_cache_redis_errors_total count it. A private redis-server."""

import pytest
from django.test import Client
from prometheus_client import REGISTRY

import caching
from caching import fetcher
from tests import support
from tests.caching import names

from .conftest import cache_settings, metric


def _errors(kind: str) -> float:
    return REGISTRY.get_sample_value(metric("cache_redis_errors_total"), {"tier": "l2", "kind": kind}) or 0.0


def _fill_until_oom(client) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 64 * 1024)
    blob = b"x" * 16 * 1024
    for i in range(64):
        try:
            client.set(f"ballast:{i}", blob)
        except Exception:  # noqa: BLE001 - the OOM we are waiting for
            return
    pytest.fail("Redis never reported OOM")


@pytest.mark.slow
@pytest.mark.django_db
def test_oom_is_served_from_the_loader_and_counted(use_private_redis):
    client = use_private_redis.client()
    with cache_settings(BREAKER_FAILURES=1000):
        assert caching.fetch(names.article_key(1), lambda: "warm", kind="article").source == caching.MISS
        _fill_until_oom(client)
        before = _errors("oom")
        fetcher.clear_local()
        for i in range(5):
            fetched = caching.fetch(names.article_key(100 + i), lambda i=i: f"v{i}", kind="article", tags=["t"])
            assert (fetched.value, fetched.source) == (f"v{i}", caching.MISS)
        caching.invalidate_tags(["t"])  # refused too: queued, no exception
        assert _errors("oom") > before
        # Through HTTP: a miss of a public page answers, never 500 (a page past the end: 404).
        response = Client().get("/api/articles/?page=9")
        assert response.status_code in (200, 404), response.content[:200]
        assert response.status_code != 500


@pytest.mark.slow
@pytest.mark.django_db
def test_readonly_replica_is_served_from_the_loader_and_counted(use_private_redis):
    client = use_private_redis.client()
    with cache_settings(BREAKER_FAILURES=1000):
        caching.fetch(names.article_key(2), lambda: "warm", kind="article")
        # A replica of a master that does not answer: reads work, every write says READONLY.
        client.replicaof("127.0.0.1", support.free_port())
        try:
            before = _errors("readonly")
            fetcher.clear_local()
            fetched = caching.fetch(names.article_key(200), lambda: "fresh", kind="article", tags=["t"])
            assert (fetched.value, fetched.source) == ("fresh", caching.MISS)
            assert _errors("readonly") > before
            response = Client().get("/api/articles/?page=9")
            assert response.status_code in (200, 404)
        finally:
            client.replicaof("NO", "ONE")
