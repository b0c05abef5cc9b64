"""Django's own cache backend suite (BaseCacheTests of tests/cache/tests.py, fetched from the
installed Django's sdist) run against caching.backends.TieredCache on the real test Redis."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import TestCase, modify_settings, override_settings

from tests.cache_backend.conftest import SUITE_ERROR, tiered_params

if SUITE_ERROR:
    pytest.skip(f"Django's cache test suite could not be fetched: {SUITE_ERROR}", allow_module_level=True)

from cache import tests as django_cache_tests  # noqa: E402  (fetched package, see conftest)
from cache.models import Poll  # noqa: E402

# Like Django's RedisCacheTests: a Redis backend has no MAX_ENTRIES culling, so the "cull" and
# "zero_cull" aliases are left out and test_cull / test_zero_cull / test_cull_delete_when_store_empty
# skip themselves ("Culling isn't implemented.").
EXCLUDED = {"cull", "zero_cull"}


# Poll instances are pickled into the cache: unpickling looks the model up by app label, so the
# fetched `cache` package is installed as an app for these classes.
@modify_settings(INSTALLED_APPS={"append": "cache"})
@override_settings(CACHES=django_cache_tests.caches_setting_for_tests(base=tiered_params(), exclude=EXCLUDED))
class TieredCacheDjangoSuiteTests(django_cache_tests.BaseCacheTests, TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Django's runner installs the "cache" test app; we create Poll's table ourselves
        # (inside the class transaction, rolled back at the end).
        with connection.schema_editor() as editor:
            editor.create_model(Poll)


@override_settings(CACHES=django_cache_tests.caches_setting_for_tests(
    base=tiered_params(L1_ENABLED=False), exclude=EXCLUDED))
class TieredCacheWithoutL1DjangoSuiteTests(TieredCacheDjangoSuiteTests):
    """The same suite with L1 off (L2 only), to show the L1 changes no answer."""
