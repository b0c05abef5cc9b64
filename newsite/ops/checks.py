"""System checks of the project's wiring."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.database)
def check_replica_lag(app_configs=None, **kwargs):
    """ops.E001: with read replicas, DATABASE_REPLICA_MAX_LAG (how far behind a replica may be
    and still be read, newsite/db_routers.py) must stay below TAG_INVALIDATION_TTL minus one
    step of the fence's log (how long the cache remembers the write position an invalidation
    followed, caching/fence.py). A replica between the two is read and then its every fill is
    refused by the fence: correct, but each is loaded twice."""
    if not getattr(settings, "DATABASE_READ_REPLICAS", None):
        return []
    from caching import fence
    from caching.conf import ENGINE_DEFAULTS

    ttl = int(getattr(settings, "NEWSITE_CACHE", {}).get("TAG_INVALIDATION_TTL", ENGINE_DEFAULTS["TAG_INVALIDATION_TTL"]))
    lag = float(getattr(settings, "DATABASE_REPLICA_MAX_LAG", 30.0))
    bound = ttl - fence.log_step(ttl)
    if lag < bound:
        return []
    return [checks.Error(
        f"DATABASE_REPLICA_MAX_LAG ({lag:g} s) must be below NEWSITE_CACHE['TAG_INVALIDATION_TTL'] "
        f"minus the fence's log step ({ttl} - {fence.log_step(ttl)} = {bound} s)",
        hint="Lower DATABASE_REPLICA_MAX_LAG or raise TAG_INVALIDATION_TTL (docs/scaling.md).",
        id="ops.E001",
    )]
