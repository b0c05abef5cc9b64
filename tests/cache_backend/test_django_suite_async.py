"""Django's own cache suite (BaseCacheTests) through TieredCache's native async methods: the
test backend runs each sync call as its async twin (tests/cache_backend/async_twin.py), with
and without L1. Django's tests/cache/tests.py has no async cases of its own for a real
backend (tests_async.py covers only the dummy cache), hence the twin."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.cache_backend.conftest import SUITE_ERROR, tiered_params

if SUITE_ERROR:
    pytest.skip(f"Django's cache test suite could not be fetched: {SUITE_ERROR}", allow_module_level=True)

from cache import tests as django_cache_tests  # noqa: E402  (fetched package, see conftest)

from tests.cache_backend import test_django_suite as sync_suite  # noqa: E402  (a module: its classes are not collected twice)

TWIN = "tests.cache_backend.async_twin.AsyncDrivenTieredCache"


@override_settings(CACHES=django_cache_tests.caches_setting_for_tests(
    base={**tiered_params(), "BACKEND": TWIN}, exclude=sync_suite.EXCLUDED))
class AsyncTieredCacheDjangoSuiteTests(sync_suite.TieredCacheDjangoSuiteTests):
    pass


@override_settings(CACHES=django_cache_tests.caches_setting_for_tests(
    base={**tiered_params(L1_ENABLED=False), "BACKEND": TWIN}, exclude=sync_suite.EXCLUDED))
class AsyncTieredCacheWithoutL1DjangoSuiteTests(sync_suite.TieredCacheDjangoSuiteTests):
    pass
