"""The cache configuration, read once from settings and re-read when a test overrides them.

`get()` is on the hot path: it returns a module global, no dict lookups into settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string

DEFAULTS = {
    "L1_TTL": 30,
    "L1_MAX_ENTRIES": 20_000,
    "L1_MAX_BYTES": 64 * 1024 * 1024,
    "L1_MAX_ITEM_BYTES": 1024 * 1024,
    "TTL_JITTER": 0.1,
    "ENABLED": True,
    "L1_ENABLED": True,
    "LEASE_TTL": 10.0,
    "LEASE_WAIT": 3.0,
    "XFETCH_BETA": 1.0,
    "STALE_GRACE_MAX": 3600,
    "TAG_INVALIDATION_TTL": 600,
    "TAG_BUCKET_SECONDS": 900,
    "BREAKER_FAILURES": 3,
    "BREAKER_RESET": 2.0,
    "LOADER_ERRORS": ["django.db.Error"],
}

NEGATIVE_KIND = "negative"


@dataclass(frozen=True)
class Kind:
    """One kind of cached value (settings.NEWSITE_CACHE_KINDS), resolved: app-tier TTL, the
    grace an entry stays in L2 past its soft expiry (to be served stale), and the HTTP freshness
    of public responses of this kind."""

    name: str
    ttl: float
    grace: float
    max_age: int = 0
    s_maxage: int = 0
    swr: int = 0
    sie: int = 0

    @property
    def cache_control(self) -> str:
        """`public, max-age=B, s-maxage=E[, stale-while-revalidate=S][, stale-if-error=X]`."""
        parts = [f"public, max-age={self.max_age}, s-maxage={self.s_maxage}"]
        if self.swr:
            parts.append(f"stale-while-revalidate={self.swr}")
        if self.sie:
            parts.append(f"stale-if-error={self.sie}")
        return ", ".join(parts)


@dataclass
class Conf:
    enabled: bool
    l1_enabled: bool
    l1_ttl: float
    l1_max_entries: int
    l1_max_bytes: int
    l1_max_item_bytes: int
    jitter: float
    lease_ttl: float
    lease_wait: float
    xfetch_beta: float
    tag_invalidation_ttl: int
    tag_bucket_seconds: int
    breaker_failures: int
    breaker_reset: float
    loader_errors: tuple
    key_prefix: str
    kinds: dict = field(default_factory=dict)
    max_hard_ttl: float = 0.0

    def kind(self, name: str) -> Kind:
        try:
            return self.kinds[name]
        except KeyError:
            raise KeyError(f"unknown cache kind {name!r}: add it to settings.NEWSITE_CACHE_KINDS") from None

    def jittered(self, ttl: float) -> float:
        """A TTL spread by +-jitter so keys filled together do not expire together."""
        if not self.jitter:
            return ttl
        return ttl * (1.0 + random.uniform(-self.jitter, self.jitter))


def _build() -> Conf:
    raw = {**DEFAULTS, **getattr(settings, "NEWSITE_CACHE", {})}
    grace_max = float(raw["STALE_GRACE_MAX"])
    kinds = {}
    for name, spec in getattr(settings, "NEWSITE_CACHE_KINDS", {}).items():
        grace = min(float(max(spec.get("swr", 0), spec.get("sie", 0))), grace_max)
        kinds[name] = Kind(
            name=name, ttl=float(spec["ttl"]), grace=grace,
            max_age=int(spec.get("max_age", 0)), s_maxage=int(spec.get("s_maxage", 0)),
            swr=int(spec.get("swr", 0)), sie=int(spec.get("sie", 0)),
        )
    kinds.setdefault(NEGATIVE_KIND, Kind(name=NEGATIVE_KIND, ttl=30.0, grace=0.0, max_age=30, s_maxage=30))
    jitter = float(raw["TTL_JITTER"])
    max_hard = max((k.ttl * (1 + jitter) + k.grace for k in kinds.values()), default=3600.0)
    caches = getattr(settings, "CACHES", {}).get("default", {})
    return Conf(
        enabled=bool(raw["ENABLED"]),
        l1_enabled=bool(raw["L1_ENABLED"]),
        l1_ttl=float(raw["L1_TTL"]),
        l1_max_entries=int(raw["L1_MAX_ENTRIES"]),
        l1_max_bytes=int(raw["L1_MAX_BYTES"]),
        l1_max_item_bytes=int(raw["L1_MAX_ITEM_BYTES"]),
        jitter=jitter,
        lease_ttl=float(raw["LEASE_TTL"]),
        lease_wait=float(raw["LEASE_WAIT"]),
        xfetch_beta=float(raw["XFETCH_BETA"]),
        tag_invalidation_ttl=int(raw["TAG_INVALIDATION_TTL"]),
        tag_bucket_seconds=int(raw["TAG_BUCKET_SECONDS"]),
        breaker_failures=int(raw["BREAKER_FAILURES"]),
        breaker_reset=float(raw["BREAKER_RESET"]),
        loader_errors=tuple(import_string(p) if isinstance(p, str) else p for p in raw["LOADER_ERRORS"]),
        key_prefix=str(caches.get("KEY_PREFIX", "") or "newsite"),
        kinds=kinds,
        max_hard_ttl=max_hard,
    )


_conf: Conf | None = None


def get() -> Conf:
    """The current configuration (built on first use)."""
    global _conf
    conf = _conf
    if conf is None:
        conf = _conf = _build()
    return conf


def reset() -> None:
    """Forget the configuration; the next get() re-reads settings."""
    global _conf
    _conf = None
