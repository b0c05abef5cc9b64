"""`TieredCache`: Django's BaseCache API on the library's tiers (L1 per process + L2 in Redis).

    CACHES = {"default": {
        "BACKEND": "caching.backends.TieredCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"L1_MAX_ENTRIES": 10_000, "L1_KEY_PREFIXES": ["views.decorators.cache."]},
    }}

A thin face on the engine (caching/engine.py: L1, Redis client and breaker, subscriber), which
it shares with nothing but other TieredCache instances of the same settings in the process; the
face owns only its value format and its namespace index. Reads: L1 (no Redis), else one command (an EVALSHA returning value and PTTL when the key may
live in L1, so the L1 copy never outlives Redis's; a plain GET/MGET otherwise). Writes: one
EVALSHA that writes, indexes the key for clear() and, for keys an L1 may hold, publishes it to
every process's L1 (caching/lua/). add/incr/decr/touch are atomic in Redis. Values:
ints (not bools) are stored as decimal strings (INCRBY works on them), everything else is
pickled; L1 keeps the stored bytes (or the value itself for str/bytes/int/float/bool/None) and
unpickles on each hit, so callers never share a mutable object. See README ("Using the tiered
cache in another project") for the guarantees and the measured costs.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from dataclasses import dataclass

from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from caching import engine as engine_module
from caching import keys, metrics
from caching import l1 as l1_module
from caching.backends.tiered_async import AsyncMethods
from caching.conf import EngineSettings
from caching.l1 import ENTRY_OVERHEAD, RAW, VALUE, FillGuard
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)

CacheUnavailable = L2Unavailable  # raised by every operation when Redis is unusable and not FAIL_OPEN

_PICKLE_MARK = 0x80  # every pickle of protocol >= 2 starts with PROTO
_IMMUTABLE = (str, bytes, int, float, bool, type(None))
_RAW = object()  # L1 entry value when the stored bytes must be unpickled on each hit
_BATCH = 500  # keys per script call (Lua's unpack() and one script's run time stay small)

# The face's own options; every other OPTIONS key is an engine option (caching/conf.py
# ENGINE_DEFAULTS: L1_MAX_ENTRIES, L1_TTL, BREAKER_FAILURES, SOCKET_TIMEOUT, ...).
FACE_DEFAULTS = {
    "NAMESPACE": None,  # default: "djtc:<KEY_PREFIX>" (or "djtc")
    "L1_KEY_PREFIXES": None,  # None: every key may live in L1
    "FAIL_OPEN": False,
    "METRICS_LABEL": "django_cache",
    "IGNORE_EXCEPTIONS": None,  # django-redis's name for FAIL_OPEN
}


def dumps(value) -> bytes:
    if type(value) is int:
        return b"%d" % value
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def loads(raw: bytes):
    if raw[0] == _PICKLE_MARK:
        return pickle.loads(raw)
    return int(raw)


@dataclass(frozen=True)
class FaceOptions:
    l1_key_prefixes: tuple | None
    l1_key_filter: object  # callable(key) -> bool, or None
    fail_open: bool
    metrics_label: str


def build_settings(location, params: dict) -> tuple[EngineSettings, FaceOptions]:
    """Validate LOCATION and OPTIONS (ImproperlyConfigured on a bad one)."""
    options = params.get("OPTIONS") or {}
    opts = {**FACE_DEFAULTS, **{k: v for k, v in options.items() if k in FACE_DEFAULTS}}
    if opts["IGNORE_EXCEPTIONS"] is not None:
        opts["FAIL_OPEN"] = bool(opts["IGNORE_EXCEPTIONS"])
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
    face = FaceOptions(
        l1_key_prefixes=prefixes, l1_key_filter=key_filter, fail_open=bool(opts["FAIL_OPEN"]),
        metrics_label=str(opts["METRICS_LABEL"]),
    )
    engine = EngineSettings.from_options(
        options, namespace=str(namespace), location=location, metrics_label=f"l2:{face.metrics_label}",
        face_options=frozenset(FACE_DEFAULTS), owner="TieredCache OPTIONS",
    )
    return engine, face


@dataclass(slots=True)
class WritePlan:
    """set.lua calls about to run (TieredCache._write_plan), with what their answer needs."""

    batches: list  # of [(key, vkey, payload, value)]
    announces: list  # the L1-eligible vkeys of each batch
    calls: list
    ttl_ms: int
    nx: bool
    epoch: int  # L1's, before the calls
    started: float  # monotonic, before the calls


class FaceState:
    """This process's TieredCache state over one engine (shared by every instance and thread)."""

    def __init__(self, engine, face: FaceOptions):
        self.engine = engine
        self.face = face
        self.namespace = engine.namespace
        self.l1 = engine.l1
        self.l2 = engine.l2
        self.index_key = keys.index_key(engine.namespace)
        self.seq_key = engine.sequence_key
        self.stats = metrics.stats_for(face.metrics_label)
        self.degraded = 0  # operations answered without Redis (FAIL_OPEN)

    def eligible(self, key: str, vkey: str) -> bool:
        """May `key` (as passed to the cache, before KEY_PREFIX and version) live in L1? Keys
        with a newline never do: the channel's grammar separates keys by newlines."""
        if self.l1 is None or "\n" in vkey:
            return False
        face = self.face
        if face.l1_key_filter is not None:
            return bool(face.l1_key_filter(key))
        if face.l1_key_prefixes is not None:
            return key.startswith(face.l1_key_prefixes)
        return True

    def l1_live(self) -> bool:
        """L1 is filled only while the invalidation subscription is up."""
        return self.engine.subscribed()

    def announce_args(self, vkeys: list) -> list:
        return [self.engine.channel, "\n".join(vkeys)] if vkeys else ["", ""]

    def snapshot(self) -> dict:
        return {**self.engine.snapshot(), "degraded": self.degraded}


_states: dict[tuple, FaceState] = {}
_states_lock = threading.Lock()


def state_for(settings: EngineSettings, face: FaceOptions) -> FaceState:
    state = _states.get((settings, face))
    if state is None:
        with _states_lock:
            state = _states.get((settings, face))
            if state is None:
                state = _states[(settings, face)] = FaceState(engine_module.engine_for(settings), face)
    return state


def _forget() -> None:
    global _states, _states_lock
    _states = {}
    _states_lock = threading.Lock()


engine_module.on_reset.append(_forget)


class TieredCache(AsyncMethods, BaseCache):
    """A Django cache backend: L1 per process (coherent through pub/sub) over Redis. The async
    methods (aget, aset, ...) are native (caching/backends/tiered_async.py)."""

    _dumps = staticmethod(dumps)  # for the async methods (tiered_async.py)

    def __init__(self, server, params):
        super().__init__(params)
        self._settings, self._face = build_settings(server, params)
        self._state = None
        self._generation = -1

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def state(self) -> FaceState:
        """This process's state of this config (built on first use, again after fork/reset)."""
        state = self._state
        if state is None or self._generation != engine_module.generation:
            self._generation = engine_module.generation
            state = self._state = state_for(self._settings, self._face)
        return state

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

    def _vkey(self, state, key, version) -> str:
        return keys.value_key(state.namespace, self.make_and_validate_key(key, version=version))

    def _unavailable(self, state, exc, fallback):
        """FAIL_OPEN: count and answer `fallback`; else raise."""
        if not state.face.fail_open:
            raise exc
        state.degraded += 1
        return fallback

    def _applied_locally(self, state, seq, vkeys) -> None:
        """Apply our own write to our L1 at once (the broadcast echo is then a no-op)."""
        if vkeys and seq:
            state.l1.invalidate(int(seq), vkeys)

    def _put_l1(self, state, vkey, raw, value, ttl_ms, since, started) -> None:
        """Keep `raw` in L1 for min(L1_TTL, the Redis TTL) counted from `started` (taken before
        the Redis call), so the copy never outlives the Redis value."""
        if not state.l1_live():
            return
        ttl = state.engine.settings.l1_ttl
        if ttl_ms > 0:
            ttl = min(ttl, ttl_ms / 1000.0)
        elif ttl_ms != -1:
            return  # -2: gone
        if type(value) not in _IMMUTABLE:
            value = _RAW
        # Its only tag is its own key (exact-key invalidation is tag invalidation, caching/l1.py);
        # the stored bytes ride along (RAW) when the value must be unpickled on each hit.
        state.l1.put(vkey, l1_module.entry(value, 0.0, (vkey,), len(raw) + ENTRY_OVERHEAD + 2 * len(vkey), started + ttl,
                                           state.stats.prefix, raw), since)

    # --- reads --------------------------------------------------------------------------------

    def get(self, key, default=None, version=None):
        state = self.state
        vkey = self._vkey(state, key, version)
        if state.eligible(key, vkey):
            entry = state.l1.get(vkey)
            if entry is not None:
                state.stats.hit_l1()
                value = entry[VALUE]
                return loads(entry[RAW]) if value is _RAW else value
            state.stats.miss_l1()
            since = state.l1.since()
            started = time.monotonic()
            try:
                raw, pttl = state.l2.script("get", [vkey], [])
            except L2Unavailable as exc:
                return self._unavailable(state, exc, default)
            return self._got(state, vkey, raw, default, pttl, since, started)
        try:
            raw = state.l2.call(state.l2.client.get, vkey)
        except L2Unavailable as exc:
            return self._unavailable(state, exc, default)
        return self._got(state, vkey, raw, default)

    def _got(self, state, vkey, raw, default, pttl=None, since=None, started=0.0):
        """get()'s answer from what Redis answered (`pttl` given: an L1-eligible key, kept in
        L1 under `since`)."""
        if raw is None:
            state.stats.miss_l2()
            return default
        state.stats.hit_l2()
        value = loads(raw)
        if pttl is not None:
            self._put_l1(state, vkey, raw, value, pttl, since, started)
        return value

    def _from_l1(self, entry):
        """The value of an L1 entry (unpickled from the stored bytes when it is mutable)."""
        value = entry[VALUE]
        return loads(entry[RAW]) if value is _RAW else value

    def get_many(self, keys, version=None):
        """L1 first, then one round trip for the rest (a get script for L1-eligible keys and an
        MGET for the others, pipelined). Returns {key: value} of the keys found."""
        state = self.state
        found, eligible, plain = self._many_from_l1(state, keys, version)
        if not eligible and not plain:
            return found
        since = state.l1.since() if state.l1 is not None else FillGuard(0, 0)
        started = time.monotonic()
        try:
            replies = state.l2.execute(self._many_calls(eligible, plain))
        except L2Unavailable as exc:
            return self._unavailable(state, exc, found)
        return self._many_done(state, found, eligible, plain, replies, since, started)

    def _many_from_l1(self, state, keys, version) -> tuple[dict, list, list]:
        """get_many's first step: ({key: value} found in L1, [(key, vkey)] to read with the get
        script, [(key, vkey)] to MGET)."""
        pairs = self._many_pairs(state, keys, version)
        l1 = state.l1
        return self._many_sorted(state, pairs, [l1.get(vkey) if l1_ok else None for _, vkey, l1_ok in pairs])

    def _many_pairs(self, state, keys, version) -> list:
        """[(key, vkey, whether L1 may hold it)] of get_many's keys."""
        pairs = []
        for key in keys:
            vkey = self._vkey(state, key, version)
            pairs.append((key, vkey, state.eligible(key, vkey)))
        return pairs

    def _many_sorted(self, state, pairs: list, entries: list) -> tuple[dict, list, list]:
        """_many_from_l1's answer from the L1 `entries` of `pairs` (None: a miss, or not
        eligible), the hits and misses counted."""
        found = {}
        eligible, plain = [], []
        stats = state.stats
        for (key, vkey, l1_ok), entry in zip(pairs, entries, strict=True):
            if not l1_ok:
                plain.append((key, vkey))
            elif entry is not None:
                stats.hit_l1()
                found[key] = self._from_l1(entry)
            else:
                stats.miss_l1()
                eligible.append((key, vkey))
        return found, eligible, plain

    @staticmethod
    def _many_calls(eligible: list, plain: list) -> list:
        calls = []
        if eligible:
            calls.append(("get", [v for _, v in eligible], []))
        if plain:
            calls.append(("mget", [v for _, v in plain], []))
        return calls

    def _many_done(self, state, found, eligible, plain, replies, since, started) -> dict:
        """get_many's answer: `found` completed with Redis's `replies` (L1 backfilled)."""
        if eligible:
            flat = replies.pop(0)
            for i, (key, vkey) in enumerate(eligible):
                raw, pttl = flat[2 * i], flat[2 * i + 1]
                if raw is None:
                    state.stats.miss_l2()
                    continue
                state.stats.hit_l2()
                value = found[key] = loads(raw)
                self._put_l1(state, vkey, raw, value, pttl, since, started)
        if plain:
            for (key, _), raw in zip(plain, replies[0], strict=True):
                if raw is None:
                    state.stats.miss_l2()
                else:
                    state.stats.hit_l2()
                    found[key] = loads(raw)
        return found

    def has_key(self, key, version=None):
        state = self.state
        vkey = self._vkey(state, key, version)
        if state.eligible(key, vkey) and state.l1.get(vkey) is not None:
            return True
        try:
            return bool(state.l2.call(state.l2.client.exists, vkey))
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)

    # --- writes -------------------------------------------------------------------------------

    def _write(self, state, items: list, ttl_ms: int, nx: bool) -> list:
        """Run set.lua over `items` [(key, vkey, payload, value)] in batches (one pipelined round
        trip). Returns the stored count of each batch; fills our own L1 (write-through)."""
        plan = self._write_plan(state, items, ttl_ms, nx)
        return self._written(state, plan, state.l2.execute(plan.calls))

    def _write_plan(self, state, items: list, ttl_ms: int, nx: bool) -> WritePlan:
        """The set.lua calls of _write (taken before they run: L1's epoch, the clock)."""
        batches = [items[i:i + _BATCH] for i in range(0, len(items), _BATCH)]
        epoch = state.l1.epoch if state.l1 is not None else 0
        started = time.monotonic()
        calls, announces = [], []
        for batch in batches:
            announced = [vkey for key, vkey, _, _ in batch if state.eligible(key, vkey)]
            announces.append(announced)
            calls.append(("set", [state.index_key, state.seq_key, *[vkey for _, vkey, _, _ in batch]],
                          [*state.announce_args(announced), ttl_ms, "1" if nx else "0",
                           *[payload for _, _, payload, _ in batch]]))
        return WritePlan(batches, announces, calls, ttl_ms, nx, epoch, started)

    def _written(self, state, plan: WritePlan, results: list) -> list:
        """_write's answer from set.lua's `results`: our L1 updated (write-through)."""
        ttl_ms, nx, epoch, started = plan.ttl_ms, plan.nx, plan.epoch, plan.started
        for batch, announced, (stored, seq) in zip(plan.batches, plan.announces, results, strict=True):
            if not announced or not stored:
                continue
            self._applied_locally(state, seq, announced)
            # add() is one key, so "stored" means this value is the one in Redis.
            for key, vkey, payload, value in (batch if not nx or len(batch) == 1 else ()):
                if state.eligible(key, vkey):
                    self._put_l1(state, vkey, payload, value, ttl_ms, FillGuard(int(seq), epoch, started), started)
        return [stored for stored, _ in results]

    def _delete(self, state, pairs: list) -> int:
        """delete.lua over [(key, vkey)] in batches. Returns how many keys existed."""
        announces, calls = self._delete_plan(state, pairs)
        return self._deleted(state, announces, state.l2.execute(calls))

    @staticmethod
    def _delete_plan(state, pairs: list) -> tuple[list, list]:
        """The delete.lua calls of _delete: ([announced vkeys per batch], calls)."""
        batches = [pairs[i:i + _BATCH] for i in range(0, len(pairs), _BATCH)]
        announces = [[vkey for key, vkey in batch if state.eligible(key, vkey)] for batch in batches]
        calls = [("delete", [state.index_key, state.seq_key, *[v for _, v in batch]], state.announce_args(announced))
                 for batch, announced in zip(batches, announces, strict=True)]
        return announces, calls

    def _deleted(self, state, announces: list, results: list) -> int:
        for announced, (_, seq) in zip(announces, results, strict=True):
            self._applied_locally(state, seq, announced)
        return sum(deleted for deleted, _ in results)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        state = self.state
        vkey = self._vkey(state, key, version)
        payload = dumps(value)  # a PickleError propagates before any Redis call
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:
                self._delete(state, [(key, vkey)])
            else:
                self._write(state, [(key, vkey, payload, value)], ttl_ms, nx=False)
        except L2Unavailable as exc:
            self._unavailable(state, exc, None)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        state = self.state
        vkey = self._vkey(state, key, version)
        payload = dumps(value)
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:  # Django: True if the key was absent; nothing is kept
                return not state.l2.call(state.l2.client.exists, vkey)
            return bool(self._write(state, [(key, vkey, payload, value)], ttl_ms, nx=True)[0])
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        """One pipelined round trip (set.lua per 500 keys). Returns the keys not stored: [] or,
        with FAIL_OPEN and Redis unusable, all of them."""
        if not data:
            return []
        state = self.state
        items = [(key, self._vkey(state, key, version), dumps(value), value) for key, value in data.items()]
        ttl_ms = self._ttl_ms(timeout)
        try:
            if ttl_ms == 0:
                self._delete(state, [(key, vkey) for key, vkey, _, _ in items])
            else:
                self._write(state, items, ttl_ms, nx=False)
        except L2Unavailable as exc:
            return self._unavailable(state, exc, list(data))
        return []

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        state = self.state
        vkey = self._vkey(state, key, version)
        ttl_ms = self._ttl_ms(timeout)
        announced = [vkey] if state.eligible(key, vkey) else []
        try:
            if ttl_ms == 0:
                return self._delete(state, [(key, vkey)]) > 0
            exists, seq = state.l2.script(
                "touch", [state.index_key, state.seq_key, vkey], [*state.announce_args(announced), ttl_ms]
            )
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)
        self._applied_locally(state, seq, announced)
        return bool(exists)

    def delete(self, key, version=None):
        state = self.state
        vkey = self._vkey(state, key, version)
        try:
            return self._delete(state, [(key, vkey)]) > 0
        except L2Unavailable as exc:
            return self._unavailable(state, exc, False)

    def delete_many(self, keys, version=None):
        state = self.state
        pairs = [(key, self._vkey(state, key, version)) for key in keys]
        if not pairs:
            return
        try:
            self._delete(state, pairs)
        except L2Unavailable as exc:
            self._unavailable(state, exc, None)

    def incr(self, key, delta=1, version=None):
        """Atomic in Redis (INCRBY in incr.lua); keeps the TTL. ValueError if the key is missing,
        TypeError if its value is not an integer. Raises CacheUnavailable even with FAIL_OPEN
        (a counter must not silently lose increments)."""
        state = self.state
        vkey = self._vkey(state, key, version)
        announced = [vkey] if state.eligible(key, vkey) else []
        reply = state.l2.script(
            "incr", [state.index_key, state.seq_key, vkey], [*state.announce_args(announced), int(delta)]
        )
        return self._incremented(state, key, announced, reply)

    def _incremented(self, state, key, announced: list, reply) -> int:
        if reply[0] == 0:
            raise ValueError(f"Key '{key}' not found.")
        if reply[0] == 2:
            raise TypeError(f"Value of key '{key}' is not an integer: {reply[1]!r}")
        self._applied_locally(state, reply[2], announced)
        return int(reply[1])

    def clear(self):
        """Remove every key of this backend's NAMESPACE (and nothing else) and empty every
        process's L1. Heavy: O(keys in the namespace), read from the namespace index 1,000 per
        round trip (ZRANGE + UNLINK + ZREM), never KEYS/SCAN/FLUSHDB."""
        state = self.state
        client = state.l2.client

        def run():
            removed = 0
            while True:
                members = client.zrange(state.index_key, 0, 999)
                if not members:
                    break
                pipe = client.pipeline(transaction=False)
                pipe.unlink(*members)
                pipe.zrem(state.index_key, *members)
                pipe.execute()
                removed += len(members)
            state.l2.script("clear", [state.index_key, state.seq_key], [state.engine.channel, ""])
            return removed

        try:
            state.l2.call(run)
        except L2Unavailable as exc:
            self._unavailable(state, exc, None)
        if state.l1 is not None:
            state.l1.clear()

    def close(self, **kwargs):
        """Nothing to do: the pool, L1 and subscriber are per process and outlive requests."""
