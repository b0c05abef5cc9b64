"""The fetch face's own L2 location (issue 30: the library without a django-redis default cache):
with NEWSITE_CACHE["LOCATION"] (TIERED_CACHE for another project) fetch() and invalidation use a
pool of their own on that server, whatever CACHES["default"] is; a bad URL is refused."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test.utils import override_settings

import caching
from caching import conf, engine, fetcher, keys
from tests.caching import names

from .conftest import cache_settings


def test_fetch_reads_and_invalidates_through_its_own_location(use_private_redis):
    """CACHES["default"] is a local-memory cache here: only LOCATION can lead fetch() to Redis."""
    private = use_private_redis
    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": "loc"}}
    with override_settings(CACHES=locmem), cache_settings(LOCATION=private.url):
        key = names.article_key(7)
        assert caching.fetch(key, lambda: "v1", kind="article", tags=["article:7"]).source == caching.MISS
        fetcher.clear_local()  # L1 emptied: the next read comes from L2, on the private server
        assert caching.fetch(key, lambda: "unused", kind="article", tags=["article:7"]).source == caching.HIT_L2
        assert private.client().exists(keys.value_key(fetcher.current().namespace, key))
        caching.invalidate_tags(["article:7"])
        assert not private.client().exists(keys.value_key(fetcher.current().namespace, key))
        assert caching.fetch(key, lambda: "v2", kind="article", tags=["article:7"]).value == "v2"
        assert engine.default().l2.client.connection_pool.connection_kwargs["port"] == private.port


@pytest.mark.parametrize("location", ["http://127.0.0.1:6379/0", 6379])
def test_a_location_that_is_not_a_redis_url_is_refused(location):
    with cache_settings(LOCATION=location), pytest.raises(ImproperlyConfigured, match="LOCATION"):
        conf.get()
