"""`TieredCache`: Django's BaseCache API on newsite's tiers (L1 per process + L2 in Redis).

    CACHES = {"default": {
        "BACKEND": "caching.backends.TieredCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"L1_MAX_ENTRIES": 10_000, "L1_KEY_PREFIXES": ["views.decorators.cache."]},
    }}

Reads: L1 (no Redis), else one command (an EVALSHA returning value and PTTL when the key may
live in L1, so the L1 copy never outlives Redis's; a plain GET/MGET otherwise). Writes: one
EVALSHA that writes, indexes the key for clear() and, for keys an L1 may hold, publishes it to
every process's L1 (caching/backends/lua/). add/incr/decr/touch are atomic in Redis. Values:
ints (not bools) are stored as decimal strings (INCRBY works on them), everything else is
pickled; L1 keeps the stored bytes (or the value itself for str/bytes/int/float/bool/None) and
unpickles on each hit, so callers never share a mutable object. See README ("Using the tiered
cache in another project") for the guarantees and the measured costs.
"""

from __future__ import annotations

import json
import logging
import pickle
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from caching import keys
from caching.backends import shared
from caching.l1 import ENTRY_OVERHEAD, L1Entry
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)

CacheUnavailable = L2Unavailable  # raised by every operation when Redis is unusable and not FAIL_OPEN

_PICKLE_MARK = 0x80  # every pickle of protocol >= 2 starts with PROTO
_IMMUTABLE = (str, bytes, int, float, bool, type(None))
_RAW = object()  # L1 entry value when the stored bytes must be unpickled on each hit
_BATCH = 500  # keys per script call (Lua's unpack() and one script's run time stay small)

OPTION_DEFAULTS = {
    "NAMESPACE": None,  # default: "djtc:<KEY_PREFIX>" (or "djtc")
    "L1_ENABLED": True,
    "L1_MAX_ENTRIES": 10_000,
    "L1_MAX_BYTES": 32 * 1024 * 1024,
    "L1_MAX_ITEM_BYTES": 256 * 1024,
    "L1_TTL": 30.0,
    "L1_KEY_PREFIXES": None,
    "FAIL_OPEN": False,
    "BREAKER_FAILURES": 3,
    "BREAKER_RESET": 2.0,
    "SOCKET_TIMEOUT": 0.25,
    "SOCKET_CONNECT_TIMEOUT": 0.25,
    "CONNECTION_POOL_KWARGS": {},
    "METRICS_LABEL": "django_cache",
}


def dumps(value) -> bytes:
    if type(value) is int:
        return b"%d" % value
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def loads(raw: bytes):
    if raw[0] == _PICKLE_MARK:
        return pickle.loads(raw)
    return int(raw)


class _Entry(L1Entry):
    """An L1 entry of the backend: the stored bytes, plus the value itself if immutable."""

    __slots__ = ("raw",)

    def __init__(self, value, raw: bytes, nbytes: int, expires: float, stats):
        super().__init__(value, 0.0, (), nbytes, expires, stats)
        self.raw = raw


def build_spec(location, params: dict) -> shared.Spec:
    """Validate LOCATION and OPTIONS (ImproperlyConfigured on a bad one)."""
    options = params.get("OPTIONS") or {}
    unknown = set(options) - set(OPTION_DEFAULTS) - {"IGNORE_EXCEPTIONS"}
    if unknown:
        raise ImproperlyConfigured(f"TieredCache: unknown OPTIONS {sorted(unknown)} (known: {sorted(OPTION_DEFAULTS)})")
    opts = {**OPTION_DEFAULTS, **options}
    if "IGNORE_EXCEPTIONS" in options:  # django-redis's name for the same switch
        opts["FAIL_OPEN"] = bool(options["IGNORE_EXCEPTIONS"])
    if isinstance(location, list | tuple):
        if len(location) != 1:
            raise ImproperlyConfigured("TieredCache: LOCATION must be one Redis URL (no sharding or replicas)")
        location = location[0]
    if not isinstance(location, str) or not location.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"TieredCache: LOCATION must be a redis:// URL, not {location!r}")
    prefixes, key_filter = opts["L1_KEY_PREFIXES"], None
    if isinstance(prefixes, str):
        key_filter = import_string(prefixes)
        prefixes = None
    elif callable(prefixes):
        key_filter, prefixes = prefixes, None
    elif prefixes is not None:
        prefixes = tuple(prefixes)
        if not all(isinstance(p, str) for p in prefixes):
            raise ImproperlyConfigured("TieredCache: L1_KEY_PREFIXES is a list of strings, a callable or a dotted path")
    namespace = opts["NAMESPACE"] or ("djtc:" + params["KEY_PREFIX"] if params.get("KEY_PREFIX") else "djtc")
    pool_kwargs = {
        "socket_timeout": opts["SOCKET_TIMEOUT"],
        "socket_connect_timeout": opts["SOCKET_CONNECT_TIMEOUT"],
        **opts["CONNECTION_POOL_KWARGS"],
    }
    try:
        spec = shared.Spec(
            location=location,
            namespace=str(namespace),
            l1_enabled=bool(opts["L1_ENABLED"]),
            l1_max_entries=int(opts["L1_MAX_ENTRIES"]),
            l1_max_bytes=int(opts["L1_MAX_BYTES"]),
            l1_max_item_bytes=int(opts["L1_MAX_ITEM_BYTES"]),
            l1_ttl=float(opts["L1_TTL"]),
            l1_key_prefixes=prefixes,
            l1_key_filter=key_filter,
            fail_open=bool(opts["FAIL_OPEN"]),
            breaker_failures=int(opts["BREAKER_FAILURES"]),
            breaker_reset=float(opts["BREAKER_RESET"]),
            pool_kwargs=tuple(sorted(pool_kwargs.items())),
            metrics_label=str(opts["METRICS_LABEL"]),
        )
        hash(spec)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"TieredCache: bad OPTIONS ({exc})") from exc
    if spec.l1_enabled and (spec.l1_max_entries <= 0 or spec.l1_max_bytes <= 0 or spec.l1_ttl <= 0):
        raise ImproperlyConfigured("TieredCache: L1_MAX_ENTRIES, L1_MAX_BYTES and L1_TTL must be > 0 (or L1_ENABLED False)")
    return spec


class TieredCache(BaseCache):
    """A Django cache backend: L1 per process (coherent through pub/sub) over Redis."""

    def __init__(self, server, params):
        super().__init__(params)
        self._spec = build_spec(server, params)
        self._tiers = None
        self._generation = -1

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def tiers(self) -> shared.Tiers:
        """This process's shared tiers of this config (built on first use, again after fork)."""
        tiers = self._tiers
        if tiers is None or self._generation != shared.generation:
            self._generation = shared.generation
            tiers = self._tiers = shared.tiers_for(self._spec)
        return tiers

    def validate_key(self, key):
        """Django's CacheKeyWarning checks, with a fast path: a key of <= 250 printable
        characters and no space draws no warning (memcache_key_warnings' per-character loop costs
        ~2.5 us, more than an L1 hit). Anything else goes through Django's own check."""
        if len(key) <= MEMCACHE_MAX_KEY_LENGTH and " " not in key and key.isprintable():
            return
        super().validate_key(key)

    def get_backend_timeout(self, timeout=DEFAULT_TIMEOUT):
        """Seconds (float) or None for no expiry; <= 0 means "expire now"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0, timeout)

    def _ttl_ms(self, timeout) -> int:
        """-1: no expiry; 0: expire now; else milliseconds."""
        seconds = self.get_backend_timeout(timeout)
        if seconds is None:
            return -1
        return int(seconds * 1000)

    def _vkey(self, tiers, key, version) -> str:
        return keys.backend_value_key(tiers.spec.namespace, self.make_and_validate_key(key, version=version))

    def _unavailable(self, tiers, exc, fallback):
        """FAIL_OPEN: count and answer `fallback`; else raise."""
        if not tiers.spec.fail_open:
            raise exc
        tiers.degraded += 1
        return fallback

    def _announce_args(self, tiers, vkeys: list) -> list:
        return [tiers.channel, json.dumps(vkeys)] if vkeys else ["", "[]"]

    def _applied_locally(self, tiers, seq, vkeys) -> None:
        """Apply our own write to our L1 at once (the broadcast echo is then a no-op)."""
        if vkeys and seq:
            tiers.l1.invalidate_keys(int(seq), vkeys)

    def _put_l1(self, tiers, vkey, raw, value, ttl_ms, since, started) -> None:
        """Keep `raw` in L1 for min(L1_TTL, the Redis TTL) counted from `started` (taken before
        the Redis call), so the copy never outlives the Redis value."""
        if not tiers.l1_live():
            return
        ttl = tiers.spec.l1_ttl
        if ttl_ms > 0:
            ttl = min(ttl, ttl_ms / 1000.0)
        elif ttl_ms != -1:
            return  # -2: gone
        if type(value) not in _IMMUTABLE:
            value = _RAW
        entry = _Entry(value, raw, len(raw) + ENTRY_OVERHEAD + len(vkey), started + ttl, tiers.stats)
        tiers.l1.put(vkey, entry, since[0], since[1])

    # --- reads --------------------------------------------------------------------------------

    def get(self, key, default=None, version=None):
        tiers = self.tiers
        vkey = self._vkey(tiers, key, version)
        if tiers.eligible(key):
            entry = tiers.l1.get(vkey)
            if entry is not None:
                tiers.stats.hit_l1()
                value = entry.value
                return loads(entry.raw) if value is _RAW else value
            tiers.stats.miss_l1()
            since = tiers.l1.since()
            started = time.monotonic()
            try:
                raw, pttl = tiers.l2.call(tiers.scripts["get"], keys=[vkey], client=tiers.l2.client)
            except L2Unavailable as exc:
                return self._unavailable(tiers, exc, default)
            if raw is None:
                tiers.stats.miss_l2()
                return default
            tiers.stats.hit_l2()
            value = loads(raw)
            self._put_l1(tiers, vkey, raw, value, pttl, since, started)
            return value
        try:
            raw = tiers.l2.call(tiers.l2.client.get, vkey)
        except L2Unavailable as exc:
            return self._unavailable(tiers, exc, default)
        if raw is None:
            tiers.stats.miss_l2()
            return default
        tiers.stats.hit_l2()
        return loads(raw)

    def get_many(self, keys, version=None):
        """L1 first, then one round trip for the rest (a get script for L1-eligible keys and an
        MGET for the others, pipelined). Returns {key: value} of the keys found."""
        tiers = self.tiers
        found = {}
        eligible, plain = [], []
        l1 = tiers.l1
        for key in keys:
            vkey = self._vkey(tiers, key, version)
            if tiers.eligible(key):
                entry = l1.get(vkey)
                if entry is not None:
                    tiers.stats.hit_l1()
                    value = entry.value
                    found[key] = loads(entry.raw) if value is _RAW else value
                    continue
                tiers.stats.miss_l1()
                eligible.append((key, vkey))
            else:
                plain.append((key, vkey))
        if not eligible and not plain:
            return found
        since = l1.since() if l1 is not None else (0, 0)
        started = time.monotonic()
        calls = []
        if eligible:
            calls.append(("get", [v for _, v in eligible], []))
        if plain:
            calls.append(("mget", [v for _, v in plain], []))
        try:
            replies = tiers.l2.call(tiers.execute, calls)
        except L2Unavailable as exc:
            return self._unavailable(tiers, exc, found)
        if eligible:
            flat = replies.pop(0)
            for i, (key, vkey) in enumerate(eligible):
                raw, pttl = flat[2 * i], flat[2 * i + 1]
                if raw is None:
                    tiers.stats.miss_l2()
                    continue
                tiers.stats.hit_l2()
                value = found[key] = loads(raw)
                self._put_l1(tiers, vkey, raw, value, pttl, since, started)
        if plain:
            for (key, _), raw in zip(plain, replies[0], strict=True):
                if raw is None:
                    tiers.stats.miss_l2()
                else:
                    tiers.stats.hit_l2()
                    found[key] = loads(raw)
        return found

    def has_key(self, key, version=None):
        tiers = self.tiers
        vkey = self._vkey(tiers, key, version)
        if tiers.eligible(key) and tiers.l1.get(vkey) is not None:
            return True
        try:
            return bool(tiers.l2.call(tiers.l2.client.exists, vkey))
        except L2Unavailable as exc:
            return self._unavailable(tiers, exc, False)

    # --- writes -------------------------------------------------------------------------------

    def _write(self, tiers, items: list, ttl_ms: int, nx: bool) -> list:
        """Run set.lua over `items` [(key, vkey, payload, value)] in batches (one pipelined round
        trip). Returns the stored count of each batch; fills our own L1 (write-through)."""
        batches = [items[i:i + _BATCH] for i in range(0, len(items), _BATCH)]
        epoch = tiers.l1.epoch if tiers.l1 is not None else 0
        started = time.monotonic()
        calls, announces = [], []
        for batch in batches:
            announced = [vkey for key, vkey, _, _ in batch if tiers.eligible(key)]
            announces.append(announced)
            calls.append(("set", [tiers.index_key, tiers.seq_key, *[vkey for _, vkey, _, _ in batch]],
                          [*self._announce_args(tiers, announced), ttl_ms, "1" if nx else "0",
                           *[payload for _, _, payload, _ in batch]]))
        results = tiers.l2.call(tiers.execute, calls)
        for batch, announced, (stored, seq) in zip(batches, announces, results, strict=True):
            if not announced or not stored:
                continue
            self._applied_locally(tiers, seq, announced)
            # add() is one key, so "stored" means this value is the one in Redis.
            for key, vkey, payload, value in (batch if not nx or len(batch) == 1 else ()):
                if tiers.eligible(key):
                    self._put_l1(tiers, vkey, payload, value, ttl_ms, (int(seq), epoch), started)
        return [stored for stored, _ in results]

    def _delete(self, tiers, pairs: list) -> int:
        """delete.lua over [(key, vkey)] in batches. Returns how many keys existed."""
        batches = [pairs[i:i + _BATCH] for i in range(0, len(pairs), _BATCH)]
        announces = [[vkey for key, vkey in batch if tiers.eligible(key)] for batch in batches]
        calls = [("delete", [tiers.index_key, tiers.seq_key, *[v for _, v in batch]], self._announce_args(tiers, announced))
                 for batch, announced in zip(batches, announces, strict=True)]
        results = tiers.l2.call(tiers.execute, calls)
        for announced, (_, seq) in zip(announces, results, strict=True):
            self._applied_locally(tiers, seq, announced)
        return sum(deleted for deleted, _ in results)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        tiers = self.tiers
        vkey = self._vkey(tiers, key, version)
        payload = dumps(value)  # a PickleError propagates before any Redis call
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:
                self._delete(tiers, [(key, vkey)])
            else:
                self._write(tiers, [(key, vkey, payload, value)], ttl_ms, nx=False)
        except L2Unavailable as exc:
            self._unavailable(tiers, exc, None)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        tiers = self.tiers
        vkey = self._vkey(tiers, key, version)
        payload = dumps(value)
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:  # Django: True if the key was absent; nothing is kept
                return not tiers.l2.call(tiers.l2.client.exists, vkey)
            return bool(self._write(tiers, [(key, vkey, payload, value)], ttl_ms, nx=True)[0])
        except L2Unavailable as exc:
            return self._unavailable(tiers, exc, False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        """One pipelined round trip (set.lua per 500 keys). Returns the keys not stored: [] or,
        with FAIL_OPEN and Redis unusable, all of them."""
        if not data:
            return []
        tiers = self.tiers
        items = [(key, self._vkey(tiers, key, version), dumps(value), value) for key, value in data.items()]
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:
                self._delete(tiers, [(key, vkey) for key, vkey, _, _ in items])
            else:
                self._write(tiers, items, ttl_ms, nx=False)
        except L2Unavailable as exc:
            return self._unavailable(tiers, exc, list(data))
        return []

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        tiers = self.tiers
        vkey = self._vkey(tiers, key, version)
        ttl_ms = self._ttl_ms(timeout)
        announced = [vkey] if tiers.eligible(key) else []
        try:
            if ttl_ms == 0:
                return self._delete(tiers, [(key, vkey)]) > 0
            exists, seq = tiers.l2.call(
                tiers.scripts["touch"],
                keys=[tiers.index_key, tiers.seq_key, vkey],
                args=[*self._announce_args(tiers, announced), ttl_ms],
                client=tiers.l2.client,
            )
        except L2Unavailable as exc:
            return self._unavailable(tiers, exc, False)
        self._applied_locally(tiers, seq, announced)
        return bool(exists)

    def delete(self, key, version=None):
        tiers = self.tiers
        vkey = self._vkey(tiers, key, version)
        try:
            return self._delete(tiers, [(key, vkey)]) > 0
        except L2Unavailable as exc:
            return self._unavailable(tiers, exc, False)

    def delete_many(self, keys, version=None):
        tiers = self.tiers
        pairs = [(key, self._vkey(tiers, key, version)) for key in keys]
        if not pairs:
            return
        try:
            self._delete(tiers, pairs)
        except L2Unavailable as exc:
            self._unavailable(tiers, exc, None)

    def incr(self, key, delta=1, version=None):
        """Atomic in Redis (INCRBY in incr.lua); keeps the TTL. ValueError if the key is missing,
        TypeError if its value is not an integer. Raises CacheUnavailable even with FAIL_OPEN
        (a counter must not silently lose increments)."""
        tiers = self.tiers
        vkey = self._vkey(tiers, key, version)
        announced = [vkey] if tiers.eligible(key) else []
        reply = tiers.l2.call(
            tiers.scripts["incr"],
            keys=[tiers.index_key, tiers.seq_key, vkey],
            args=[*self._announce_args(tiers, announced), int(delta)],
            client=tiers.l2.client,
        )
        if reply[0] == 0:
            raise ValueError(f"Key '{key}' not found.")
        if reply[0] == 2:
            raise TypeError(f"Value of key '{key}' is not an integer: {reply[1]!r}")
        self._applied_locally(tiers, reply[2], announced)
        return int(reply[1])

    def clear(self):
        """Remove every key of this backend's NAMESPACE (and nothing else) and empty every
        process's L1. Heavy: O(keys in the namespace), read from the namespace index 1,000 per
        round trip (ZRANGE + UNLINK + ZREM), never KEYS/SCAN/FLUSHDB."""
        tiers = self.tiers
        client = tiers.l2.client

        def run():
            removed = 0
            while True:
                members = client.zrange(tiers.index_key, 0, 999)
                if not members:
                    break
                pipe = client.pipeline(transaction=False)
                pipe.unlink(*members)
                pipe.zrem(tiers.index_key, *members)
                pipe.execute()
                removed += len(members)
            tiers.scripts["clear"](keys=[tiers.index_key, tiers.seq_key],
                                   args=[tiers.channel, "[]"], client=client)
            return removed

        try:
            tiers.l2.call(run)
        except L2Unavailable as exc:
            self._unavailable(tiers, exc, None)
        if tiers.l1 is not None:
            tiers.l1.clear()

    def close(self, **kwargs):
        """Nothing to do: the pool, L1 and subscriber are per process and outlive requests."""
