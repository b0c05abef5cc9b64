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


@checks.register()
def check_client_budgets(app_configs=None, **kwargs):
    """ops.E002: the per-client budgets' settings parse (newsite/throttle.py): THROTTLE values are
    "N/S" with N >= 1 and S >= 1 (or "off"), THROTTLE_EXEMPT and TRUSTED_PROXIES are networks.
    Parsed at request time otherwise: a bad value would make every miss and view POST a 500."""
    from newsite import throttle

    errors = []
    for name, spec in getattr(settings, "THROTTLE", {}).items():
        text = str(spec or "").strip().lower()
        if text in ("", "off", "0"):
            continue
        limit, _, window = text.partition("/")
        if not (limit.isdigit() and window.isdigit() and int(limit) >= 1 and int(window) >= 1):
            errors.append(checks.Error(f"THROTTLE[{name!r}] = {spec!r} is not \"N/S\" (N per S seconds) or \"off\"",
                                       hint="e.g. THROTTLE_PUBLIC_MISS=120/60", id="ops.E002"))
    for setting in ("THROTTLE_EXEMPT", "TRUSTED_PROXIES"):
        try:
            throttle.networks(getattr(settings, setting, ()))
        except ValueError as exc:
            errors.append(checks.Error(f"{setting}: {exc}", hint="a comma-separated list of networks (CIDR)",
                                       id="ops.E002"))
    return errors
