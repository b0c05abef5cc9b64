"""Django's own BaseCacheTests against caching.backends.TieredCache, installed from the wheel
(the same classes as tests/cache_backend/test_django_suite.py runs inside newsite)."""

from cache import tests as django_cache_tests
from django.conf import settings
from django.test import TestCase, override_settings

# Like Django's RedisCacheTests: a Redis backend has no MAX_ENTRIES culling, so the "cull" and
# "zero_cull" aliases are left out and the three culling tests skip themselves.
EXCLUDED = {"cull", "zero_cull"}


def tiered_params(**options) -> dict:
    return {
        "BACKEND": "caching.backends.TieredCache",
        "LOCATION": settings.TIERED_LOCATION,
        "OPTIONS": {"NAMESPACE": settings.TIERED_NAMESPACE, **options},
    }


@override_settings(CACHES=django_cache_tests.caches_setting_for_tests(base=tiered_params(), exclude=EXCLUDED))
class TieredCacheDjangoSuiteTests(django_cache_tests.BaseCacheTests, TestCase):
    pass


@override_settings(CACHES=django_cache_tests.caches_setting_for_tests(
    base=tiered_params(L1_ENABLED=False), exclude=EXCLUDED))
class TieredCacheWithoutL1DjangoSuiteTests(TieredCacheDjangoSuiteTests):
    """The same suite with L1 off (L2 only)."""
