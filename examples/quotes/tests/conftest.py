import uuid

import pytest


@pytest.fixture(autouse=True)
def own_key_prefix(settings):
    """Each test caches under a key prefix of its own (the library re-reads CACHES when a test
    changes it), so nothing an earlier test or run left in Redis is ever read; no FLUSHDB."""
    prefix = f"quotes-test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {alias: {**spec, "KEY_PREFIX": prefix} for alias, spec in settings.CACHES.items()}
    yield
    from django.core.cache import caches

    caches["pages"].clear()  # TieredCache removes its own namespace; fetch()'s keys expire by TTL
