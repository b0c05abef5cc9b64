"""Issue 16.3: what a client sends cannot grow Redis without bound, and one invalidation never
runs one unbounded script.

- A cached 404 (a random slug or id) seen once lives in this process's L1 only (not in Redis, and
  served with s-maxage=0 so not at the edge either): no Redis key but the doorkeeper's bitmaps.
- A tag whose index bucket holds thousands of entries is invalidated by one bounded script plus
  bounded chunks (drain_set.lua), and every entry is gone before invalidate_tags() returns.
"""

import random
import string

import pytest
from django.test import Client

import caching
from caching import engine, fetcher, invalidator, keys

from .conftest import cache_settings


def _evalsha_calls(client) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.django_db
def test_random_slugs_and_ids_leave_no_redis_state():
    redis = engine.redis_client()
    client = Client()
    assert client.get("/api/articles/?page=1").status_code == 200  # the sequence etc. exist now
    before = set(redis.scan_iter(match="*"))  # test-only lookup
    rng = random.Random(7)
    for _ in range(200):
        slug = "".join(rng.choices(string.ascii_lowercase + "-", k=rng.randint(20, 1500)))
        page = client.get(f"/articles/{slug}/")
        assert page.status_code == 404
        assert "s-maxage=0" in page["Cache-Control"]
        api = client.get(f"/api/articles/{rng.randint(10**6, 10**9)}/")
        assert api.status_code == 404 and "s-maxage=0" in api["Cache-Control"]
        assert client.post(f"/api/articles/{rng.randint(10**6, 10**9)}/views/").status_code == 404
    added = {k.decode() for k in set(redis.scan_iter(match="*")) - before}
    ns = fetcher.current().namespace
    assert all(k.startswith(f"{ns}:door:") for k in added), added
    assert len(added) <= 2


@pytest.mark.django_db
def test_a_404_asked_again_is_shared_through_l2_and_the_edge():
    """The second sight of a missing URL (from another process: our L1 forgets) is admitted: it
    is stored in L2 and leaves with the negative kind's s-maxage, so the edge keeps it."""
    redis = engine.redis_client()
    client = Client()
    first = client.get("/api/articles/987654321/")
    assert first.status_code == 404 and "s-maxage=0" in first["Cache-Control"]
    again_here = client.get("/api/articles/987654321/")  # this process's L1: a second sight too
    assert again_here["X-Cache"] == caching.HIT_L1 and "s-maxage=30" in again_here["Cache-Control"]
    fetcher.clear_local()
    elsewhere = client.get("/api/articles/987654321/")
    assert elsewhere.status_code == 404 and elsewhere["X-Cache"] == caching.MISS
    assert "s-maxage=30" in elsewhere["Cache-Control"]
    ns = fetcher.current().namespace
    assert list(redis.scan_iter(match=f"{ns}:v:resp.api-article:article_id=987654321"))


@pytest.mark.slow
def test_a_huge_tag_bucket_is_deleted_in_bounded_chunks(use_private_redis):
    client = use_private_redis.client()
    with cache_settings(L1_ENABLED=False):
        ns = fetcher.current().namespace
        n = 2 * invalidator.INVALIDATE_CHUNK + 500
        for i in range(n):
            caching.fetch(f"bulk:{i}", lambda i=i: i, kind="article", tags=["huge"])
        buckets = [k for k in client.scan_iter(match=f"{ns}:tk:huge:*")]
        assert buckets and sum(client.scard(b) for b in buckets) == n
        before = _evalsha_calls(client)
        caching.invalidate_tags(["huge"])
        # One invalidate.lua (the bucket renamed aside, O(1)) + ceil(n / (chunk/2)) + 1 drains.
        assert _evalsha_calls(client) - before >= 1 + n // (invalidator.INVALIDATE_CHUNK // 2)
        assert not any(client.exists(keys.value_key(ns, f"bulk:{i}")) for i in range(0, n, 97))
        assert client.exists(keys.value_key(ns, f"bulk:{n - 1}")) == 0
        assert list(client.scan_iter(match=f"{ns}:tk:huge:*")) == []
        assert list(client.scan_iter(match=f"{keys.invalidated_set_prefix(ns)}*")) == []
        # The next read loads again: the write is visible.
        assert caching.fetch("bulk:5", lambda: "new", kind="article", tags=["huge"]).value == "new"


@pytest.mark.django_db
def test_unique_search_queries_cost_two_fixed_bitmaps():
    """search_results are admitted to L2 on their second fill only (a doorkeeper bitmap of fixed
    size per period): 300 one-off queries leave no value, bucket or lease behind; a repeated one
    is stored."""
    redis = engine.redis_client()
    client = Client()
    assert client.get("/api/search/?q=warmup").status_code == 200
    before = set(redis.scan_iter(match="*"))  # test-only lookup
    rng = random.Random(11)
    for _ in range(300):
        q = "".join(rng.choices(string.ascii_lowercase, k=12))
        assert client.get(f"/api/search/?q={q}").status_code == 200
    added = {k.decode() for k in set(redis.scan_iter(match="*")) - before}
    ns = fetcher.current().namespace
    assert all(k.startswith(f"{ns}:door:") for k in added), added
    assert len(added) <= 2
    # The same query filled again (another process: our L1 forgets) is stored in L2 now.
    fetcher.clear_local()
    assert client.get("/api/search/?q=warmup").status_code == 200
    assert any(redis.scan_iter(match=f"{ns}:v:resp.*"))


def test_doorkeeper_bitmaps_have_a_fixed_size_and_a_fixed_end(use_private_redis):
    client = use_private_redis.client()
    with cache_settings(L1_ENABLED=False):
        face = fetcher.current()
        for i in range(50):
            caching.fetch(f"search:{i}", lambda i=i: [i], kind="search_results")
        doors = list(client.scan_iter(match=f"{face.namespace}:door:*"))
        assert len(doors) == 1
        bits = face.conf.doorkeeper_bits
        assert client.strlen(doors[0]) == bits // 8
        assert client.memory_usage(doors[0]) < 1.5 * bits // 8  # not grown to twice its size (jemalloc rounds up)
        period = int(doors[0].decode().rsplit(":", 1)[1])
        assert client.expiretime(doors[0]) == (period + 2) * face.conf.doorkeeper_period
