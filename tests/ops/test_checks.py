"""newsite/ops/checks.py: the project's system checks."""

from django.conf import settings
from django.core import checks
from django.test import override_settings


def errors(**overrides):
    with override_settings(**overrides):
        return [e.id for e in checks.run_checks(tags=[checks.Tags.database]) if e.id.startswith("ops.")]


def test_a_replica_may_not_lag_longer_than_the_fence_remembers_a_write():
    cache = {**settings.NEWSITE_CACHE, "TAG_INVALIDATION_TTL": 600}
    replicas = {"DATABASE_READ_REPLICAS": ["replica_1"], "NEWSITE_CACHE": cache}
    assert errors(DATABASE_REPLICA_MAX_LAG=30.0, **replicas) == []
    assert errors(DATABASE_REPLICA_MAX_LAG=600.0, **replicas) == ["ops.E001"]
    assert errors(DATABASE_REPLICA_MAX_LAG=600.0, DATABASE_READ_REPLICAS=[]) == []
