"""The cache configuration: one validated settings object per engine, one set of defaults.

- `EngineSettings`: what one per-process engine (caching/engine.py) needs — its namespace, where
  Redis is, the L1 bounds, the breaker. Both faces build it with `EngineSettings.from_options`
  from the same option names and the same `ENGINE_DEFAULTS`: the fetch face from
  settings.TIERED_CACHE, `TieredCache` from its CACHES OPTIONS.
- `Conf`: the fetch face's own policy (kinds and TTLs, jitter, leases, XFetch, tag bookkeeping,
  which loader errors allow stale-if-error), plus its `EngineSettings`.

The defaults are declared here, once: a project's settings name only what it changes.

The library's names in a project's settings (both optional):
- `TIERED_CACHE_SETTING`: the name of the fetch face's settings dict (default "TIERED_CACHE"); its
  kinds are in "<that name>_KINDS". A project keeps a name of its own with it.
- `TIERED_CACHE_METRICS_NAMESPACE`: the first word of every metric name (default "tiered":
  tiered_cache_requests_total, ..., tiered_breaker_open); read once, when caching.metrics is
  imported.

Read once from settings and re-read when a test overrides them (caching/apps.py). `get()` is on
the hot path: it returns a module global, no dict lookups into settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

DEFAULT_SETTINGS_NAME = "TIERED_CACHE"
DEFAULT_METRICS_NAMESPACE = "tiered"
DEFAULT_KEY_PREFIX = "tiered"  # the fetch face's, when CACHES["default"] has no KEY_PREFIX


def settings_name() -> str:
    """The name of the fetch face's settings dict (TIERED_CACHE_SETTING, default "TIERED_CACHE")."""
    return str(getattr(settings, "TIERED_CACHE_SETTING", DEFAULT_SETTINGS_NAME))


def kinds_name() -> str:
    """The name of the settings dict of kinds: "<settings_name()>_KINDS"."""
    return f"{settings_name()}_KINDS"


def metrics_namespace() -> str:
    """The first word of the library's metric names (TIERED_CACHE_METRICS_NAMESPACE, default "tiered")."""
    return str(getattr(settings, "TIERED_CACHE_METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE))


# Options of every engine (the fetch face's settings dict and TieredCache OPTIONS use the same names).
ENGINE_DEFAULTS = {
    "L1_ENABLED": True,
    # False: no Redis at all - each process's L1 and the loader (the "L2 disabled" baseline of
    # the faults benchmark). No broadcast either: another process keeps an entry a write
    # invalidated for up to L1_TTL. Not for production with more than one process.
    "L2_ENABLED": True,
    "L1_TTL": 30.0,
    # Seconds L1 stays trusted after the subscriber last proved it hears Redis (a PING answered
    # on the subscribed connection, every 0.2 s): a process cut off from Redis stops answering
    # from L1 copies older than this (docs/scaling.md, "A host cut off from Redis").
    "L1_TRUST_SECONDS": 1.0,
    "L1_MAX_ENTRIES": 20_000,
    "L1_MAX_BYTES": 64 * 1024 * 1024,
    "L1_MAX_ITEM_BYTES": 1024 * 1024,
    "TAG_INVALIDATION_TTL": 600,
    "BREAKER_FAILURES": 3,
    "BREAKER_RESET": 2.0,
    # Used when the engine opens its own pool (TieredCache's LOCATION); the fetch face uses the
    # django-redis client of CACHES["default"], configured there.
    "SOCKET_TIMEOUT": 0.25,
    "SOCKET_CONNECT_TIMEOUT": 0.25,
    "CONNECTION_POOL_KWARGS": {},
}

MIN_TRUST_SECONDS = 0.5

# Options of the fetch face only.
FETCH_DEFAULTS = {
    "ENABLED": True,
    # Where the fetch face's L2 lives: a redis://, rediss:// or unix:// URL (a pool of its own), or
    # None: the connection of CACHES["default"], which must then be a django-redis cache.
    "LOCATION": None,
    "TTL_JITTER": 0.1,
    "LEASE_TTL": 10.0,
    "LEASE_WAIT": 3.0,
    # How long a write waits for every live L1 to acknowledge its invalidation (read-your-writes
    # across processes); a timeout is counted (*_cache_invalidations_total{kind="ack_timeout"}).
    "BROADCAST_WAIT": 0.05,
    # Seconds per doorkeeper bitmap of "second_hit" kinds (a key is admitted to L2 on its second
    # fill within one to two periods) and the bitmap's size in bits (2**23 = 1 MB).
    "DOORKEEPER_PERIOD": 300,
    "DOORKEEPER_BITS": 2**23,
    "XFETCH_BETA": 1.0,
    "STALE_GRACE_MAX": 3600,
    "TAG_BUCKET_SECONDS": 900,
    "LOADER_ERRORS": ["django.db.Error"],
    # Fills fenced by the database's log position (caching/fence.py): a dotted path to a class
    # (or an instance) whose write_position() returns the primary's position after a commit; None:
    # no replicas, nothing recorded. REPLICA_BEHIND: what a fill the fence refuses does -
    # "reread" (load again from the primary and store that) or "no_store" (answer it uncached).
    "REPLICA_FENCE": None,
    "REPLICA_BEHIND": "reread",
}

NEGATIVE_KIND = "negative"
# Bump when the fetch face's stored envelope changes: old entries are then simply never read.
# The namespace carries it, so during a rolling deploy the old and the new processes use separate
# namespaces: a write made by a process not restarted yet (a Celery worker too) does not reach
# what the new ones filled until every process runs the new version - restart them together.
# 4: a value key may hold a lease ("~<token>"), which older code would try to unpickle.
# 5: details and pages carry article-counts:{id} (a like invalidates only that); entries filled
#    before it would not be reached by a like.
# 6: a response entry is an exact tuple (caching.http.response_entry), no longer a dataclass, and
#    its header store (name, value) pairs, no longer Django's (lowercased name, pair) items.
ENVELOPE_VERSION = "6"


@dataclass(frozen=True)
class EngineSettings:
    """The validated configuration of one engine (hashable: it keys the per-process registry)."""

    namespace: str  # every Redis key, the channel and the subscriber's client name start with it
    location: str | None  # a redis:// URL (own pool), or None: django-redis's CACHES[cache_alias]
    cache_alias: str
    l1_enabled: bool
    l2_enabled: bool
    l1_ttl: float
    l1_trust_seconds: float
    l1_max_entries: int
    l1_max_bytes: int
    l1_max_item_bytes: int
    tag_seq_ttl: int
    breaker_failures: int
    breaker_reset: float
    pool_kwargs: tuple  # sorted (name, value) pairs for redis.ConnectionPool.from_url
    metrics_label: str  # the breaker's tier label: "l2" for the fetch face

    @classmethod
    def from_options(cls, options: dict, *, namespace: str, location: str | None = None,
                     cache_alias: str = "default", metrics_label: str = "l2",
                     face_options: frozenset = frozenset(), owner: str = DEFAULT_SETTINGS_NAME) -> EngineSettings:
        """Validate `options` (ENGINE_DEFAULTS names, plus the face's own `face_options`, which
        are ignored here). ImproperlyConfigured names `owner` and the bad option."""
        unknown = set(options) - set(ENGINE_DEFAULTS) - set(face_options)
        if unknown:
            known = sorted(set(ENGINE_DEFAULTS) | set(face_options))
            raise ImproperlyConfigured(f"{owner}: unknown options {sorted(unknown)} (known: {known})")
        opts = {**ENGINE_DEFAULTS, **{k: v for k, v in options.items() if k in ENGINE_DEFAULTS}}
        pool_kwargs = {
            "socket_timeout": opts["SOCKET_TIMEOUT"],
            "socket_connect_timeout": opts["SOCKET_CONNECT_TIMEOUT"],
            **(opts["CONNECTION_POOL_KWARGS"] or {}),
        }
        try:
            engine = cls(
                namespace=str(namespace),
                location=location,
                cache_alias=cache_alias,
                l1_enabled=bool(opts["L1_ENABLED"]),
                l2_enabled=bool(opts["L2_ENABLED"]),
                l1_ttl=float(opts["L1_TTL"]),
                l1_trust_seconds=float(opts["L1_TRUST_SECONDS"]),
                l1_max_entries=int(opts["L1_MAX_ENTRIES"]),
                l1_max_bytes=int(opts["L1_MAX_BYTES"]),
                l1_max_item_bytes=int(opts["L1_MAX_ITEM_BYTES"]),
                tag_seq_ttl=int(opts["TAG_INVALIDATION_TTL"]),
                breaker_failures=int(opts["BREAKER_FAILURES"]),
                breaker_reset=float(opts["BREAKER_RESET"]),
                pool_kwargs=tuple(sorted(pool_kwargs.items())),
                metrics_label=str(metrics_label),
            )
            hash(engine)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{owner}: bad options ({exc})") from exc
        if engine.l1_enabled and min(engine.l1_max_entries, engine.l1_max_bytes, engine.l1_ttl,
                                     engine.l1_max_item_bytes) <= 0:
            raise ImproperlyConfigured(
                f"{owner}: L1_MAX_ENTRIES, L1_MAX_BYTES, L1_MAX_ITEM_BYTES and L1_TTL must be > 0 "
                "(or L1_ENABLED False)"
            )
        if engine.l1_enabled and engine.l1_trust_seconds < MIN_TRUST_SECONDS:
            raise ImproperlyConfigured(
                f"{owner}: L1_TRUST_SECONDS must be >= {MIN_TRUST_SECONDS} (the subscriber proves it hears "
                "Redis every 0.2 s; below that L1 would lapse between two proofs)"
            )
        if engine.breaker_failures < 1 or engine.breaker_reset <= 0 or engine.tag_seq_ttl <= 0:
            raise ImproperlyConfigured(f"{owner}: BREAKER_FAILURES >= 1, BREAKER_RESET and TAG_INVALIDATION_TTL > 0")
        return engine


@dataclass(frozen=True)
class Kind:
    """One kind of cached value (settings.TIERED_CACHE_KINDS), resolved: app-tier TTL, the
    grace an entry stays in L2 past its soft expiry (to be served stale), and the HTTP freshness
    of public responses of this kind."""

    name: str
    ttl: float
    grace: float
    max_age: int = 0
    s_maxage: int = 0
    swr: int = 0
    sie: int = 0
    # "always", or "second_hit": stored in L2 only when a fill of the same key was seen in the
    # last DOORKEEPER_PERIOD or two (L1 otherwise), so one-off keys made of user input (unique
    # search queries) cost Redis two fixed-size bitmaps instead of a value each.
    admission: str = "always"

    @property
    def cache_control(self) -> str:
        """`public, max-age=B, s-maxage=E[, stale-while-revalidate=S][, stale-if-error=X]`."""
        parts = [f"public, max-age={self.max_age}, s-maxage={self.s_maxage}"]
        if self.swr:
            parts.append(f"stale-while-revalidate={self.swr}")
        if self.sie:
            parts.append(f"stale-if-error={self.sie}")
        return ", ".join(parts)

    def cache_control_within(self, left: float) -> str:
        """Cache-Control of a response of this kind that is true for `left` more seconds only
        (caching.lifetime): max-age and s-maxage capped at it, and stale-while-revalidate and
        stale-if-error cut so that no cache may serve it past the moment, not even during an
        origin outage (a taken-down article must not come back as a stale copy). Both are
        written out even when 0: an edge's default grace must not apply. Whole seconds, rounded
        down: never past the moment."""
        left = max(0, int(left))
        max_age, s_maxage = min(self.max_age, left), min(self.s_maxage, left)
        after = left - max(max_age, s_maxage)
        return (f"public, max-age={max_age}, s-maxage={s_maxage}, stale-while-revalidate={min(self.swr, after)}, "
                f"stale-if-error={min(self.sie, after)}")

    @property
    def unshared_cache_control(self) -> str:
        """For a value the shared tier did not admit (first sight of a "second_hit" key): the
        browser keeps it as usual, shared caches not at all (`s-maxage=0`)."""
        return f"public, max-age={self.max_age}, s-maxage=0"


@dataclass
class Conf:
    """The fetch face's configuration (caching.fetch and the response middleware)."""

    enabled: bool
    engine: EngineSettings
    jitter: float
    lease_ttl: float
    lease_wait: float
    broadcast_wait: float
    doorkeeper_period: int
    doorkeeper_bits: int
    xfetch_beta: float
    tag_bucket_seconds: int
    loader_errors: tuple
    key_prefix: str
    kinds: dict = field(default_factory=dict)
    max_hard_ttl: float = 0.0
    fence: object = None  # REPLICA_FENCE, instantiated (caching/fence.py)
    reread_behind: bool = True  # REPLICA_BEHIND == "reread"

    @property
    def l1_enabled(self) -> bool:
        return self.engine.l1_enabled

    @property
    def l1_ttl(self) -> float:
        return self.engine.l1_ttl

    @property
    def tag_invalidation_ttl(self) -> int:
        return self.engine.tag_seq_ttl

    def kind(self, name: str) -> Kind:
        try:
            return self.kinds[name]
        except KeyError:
            raise KeyError(f"unknown cache kind {name!r}: add it to settings.{kinds_name()}") from None

    def jittered(self, ttl: float) -> float:
        """A TTL spread by +-jitter so keys filled together do not expire together."""
        if not self.jitter:
            return ttl
        return ttl * (1.0 + random.uniform(-self.jitter, self.jitter))


_KIND_FIELDS = {f.name for f in fields(Kind)} - {"name", "grace"} | {"ttl"}
ADMISSIONS = ("always", "second_hit")


def _kinds(grace_max: float) -> dict[str, Kind]:
    kinds = {}
    owner = kinds_name()
    for name, spec in getattr(settings, owner, {}).items():
        unknown = set(spec) - _KIND_FIELDS
        if unknown or "ttl" not in spec:
            raise ImproperlyConfigured(f"{owner}[{name!r}]: needs 'ttl'; unknown keys {sorted(unknown)}")
        if spec.get("admission", "always") not in ADMISSIONS:
            raise ImproperlyConfigured(f"{owner}[{name!r}]: admission is one of {ADMISSIONS}")
        grace = min(float(max(spec.get("swr", 0), spec.get("sie", 0))), grace_max)
        kinds[name] = Kind(
            name=name, ttl=float(spec["ttl"]), grace=grace,
            max_age=int(spec.get("max_age", 0)), s_maxage=int(spec.get("s_maxage", 0)),
            swr=int(spec.get("swr", 0)), sie=int(spec.get("sie", 0)),
            admission=str(spec.get("admission", "always")),
        )
    # Cached 404s are keyed by user input (a random slug or id): admitted to L2 and the edge on
    # their second sight only, so a URL nobody asks twice leaves nothing in Redis or Varnish.
    kinds.setdefault(NEGATIVE_KIND, Kind(name=NEGATIVE_KIND, ttl=30.0, grace=0.0, max_age=30, s_maxage=30,
                                         admission="second_hit"))
    return kinds


def _build() -> Conf:
    owner = settings_name()
    options = dict(getattr(settings, owner, {}))
    face = {**FETCH_DEFAULTS, **{k: v for k, v in options.items() if k in FETCH_DEFAULTS}}
    key_prefix = str(getattr(settings, "CACHES", {}).get("default", {}).get("KEY_PREFIX", "") or DEFAULT_KEY_PREFIX)
    location = face["LOCATION"]
    if location is not None and not (isinstance(location, str) and location.startswith(("redis://", "rediss://", "unix://"))):
        raise ImproperlyConfigured(f"{owner}['LOCATION']: a redis://, rediss:// or unix:// URL, or None, not {location!r}")
    engine = EngineSettings.from_options(
        options, namespace=f"{key_prefix}:nc{ENVELOPE_VERSION}", location=location,
        face_options=frozenset(FETCH_DEFAULTS), owner=owner,
    )
    kinds = _kinds(float(face["STALE_GRACE_MAX"]))
    fence = face["REPLICA_FENCE"]
    if isinstance(fence, str):
        fence = import_string(fence)
    if isinstance(fence, type):
        fence = fence()
    if face["REPLICA_BEHIND"] not in ("reread", "no_store"):
        raise ImproperlyConfigured(f"{owner}['REPLICA_BEHIND']: 'reread' or 'no_store'")
    jitter = float(face["TTL_JITTER"])
    max_hard = max((k.ttl * (1 + jitter) + k.grace for k in kinds.values()), default=3600.0)
    return Conf(
        enabled=bool(face["ENABLED"]),
        engine=engine,
        jitter=jitter,
        lease_ttl=float(face["LEASE_TTL"]),
        lease_wait=float(face["LEASE_WAIT"]),
        broadcast_wait=float(face["BROADCAST_WAIT"]),
        doorkeeper_period=int(face["DOORKEEPER_PERIOD"]),
        doorkeeper_bits=int(face["DOORKEEPER_BITS"]),
        xfetch_beta=float(face["XFETCH_BETA"]),
        tag_bucket_seconds=int(face["TAG_BUCKET_SECONDS"]),
        loader_errors=tuple(import_string(p) if isinstance(p, str) else p for p in face["LOADER_ERRORS"]),
        key_prefix=key_prefix,
        kinds=kinds,
        max_hard_ttl=max_hard,
        fence=fence,
        reread_behind=face["REPLICA_BEHIND"] == "reread",
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
