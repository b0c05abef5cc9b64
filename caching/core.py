"""The read path: fetch() and friends. See docs/caching.md for the design and its costs.

fetch(key, loader, kind=..., tags=...):
  L1 hit                      -> the L1 entry itself (no Redis, no allocation)
  L1 miss -> in-process single-flight per key (one thread loads, the others share its Future)
          -> L2 GET (one command)
             fresh            -> HIT-L2, backfill L1
             fresh but XFetch -> early refresh: try the lease, else serve it (HIT-L2)
             stale or absent  -> acquire.lua: lease taken -> load, fill.lua (refused if a tag was
                                 invalidated after the lease), backfill L1; lease held elsewhere
                                 -> stale value (STALE) or wait briefly for the holder's fill
  Redis unreachable/breaker open -> loader, L1 only.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import pickle
import random
import threading
import time
from concurrent.futures import Future

from django.db.models.query import QuerySet

from caching import conf as conf_module
from caching import keys, metrics
from caching.broadcast import Subscriber
from caching.conf import NEGATIVE_KIND
from caching.l1 import HIT_L2, L1, MISS, STALE, Fetched, L1Entry
from caching.l2 import L2, L2Unavailable

logger = logging.getLogger(__name__)

_get_conf = conf_module.get
_PENDING_MAX = 10_000
FIRST_SUBSCRIBE_WAIT = 0.5


class Envelope:
    """A decoded L2 value. Wire format: b"<soft ms>|<filled ms>|<cost us>|" + pickle((value, tags))
    - the header is readable by Lua (acquire.lua compares the fill time) without unpickling."""

    __slots__ = ("value", "tags", "soft_expiry", "filled_at", "cost", "filled_raw", "nbytes")

    def __init__(self, raw: bytes):
        soft, filled, cost, body = raw.split(b"|", 3)
        self.value, self.tags = pickle.loads(body)
        self.soft_expiry = int(soft) / 1000.0
        self.filled_at = int(filled) / 1000.0
        self.cost = int(cost) / 1_000_000.0
        self.filled_raw = filled
        self.nbytes = len(raw)


def encode(value, tags: tuple, soft_expiry: float, filled_at: float, cost: float) -> bytes:
    header = b"%d|%d|%d|" % (int(soft_expiry * 1000), int(filled_at * 1000), int(cost * 1_000_000))
    return header + pickle.dumps((value, tags), protocol=pickle.HIGHEST_PROTOCOL)


def resolve_tags(tags, value) -> tuple:
    """`tags` is an iterable of strings or a callable(value) returning one."""
    if callable(tags):
        tags = tags(value)
    return tuple(dict.fromkeys(tags)) if tags else ()


class _Process:
    """Everything one process owns: L1, L2 client + breaker, subscriber, in-flight loads."""

    def __init__(self, conf):
        self.conf = conf
        self.pid = os.getpid()
        self.l1 = (
            L1(
                max_bytes=conf.l1_max_bytes,
                max_entries=conf.l1_max_entries,
                max_item_bytes=conf.l1_max_item_bytes,
                tag_seq_ttl=conf.tag_invalidation_ttl,
            )
            if conf.l1_enabled
            else None
        )
        self.l2 = L2(breaker_failures=conf.breaker_failures, breaker_reset=conf.breaker_reset)
        self.subscriber: Subscriber | None = None
        self._sub_lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self._inflight_lock = threading.Lock()
        self.pending_tags: set[str] = set()

    # --- L1 ---------------------------------------------------------------------------------

    def ensure_subscriber(self) -> Subscriber | None:
        if self.l1 is None:
            return None
        sub = self.subscriber
        if sub is None:
            with self._sub_lock:
                if self.subscriber is None:
                    self.subscriber = Subscriber(self.l1)
                    self.subscriber.start()
                sub = self.subscriber
        return sub

    def put_l1(self, key, value, tags, soft_expiry, filled_at, nbytes, stats, since) -> None:
        l1 = self.l1
        if l1 is None:
            return
        if self.subscriber is None:
            self.ensure_subscriber()
        conf = self.conf
        ttl = min(conf.l1_ttl * (1.0 - random.random() * conf.jitter), soft_expiry - time.time())
        if ttl <= 0:
            return
        nbytes = nbytes + 320 + 120 * len(tags) + len(key)
        entry = L1Entry(value, filled_at, tags, nbytes, time.monotonic() + ttl, stats)
        l1.put(key, entry, since[0], since[1])

    # --- single-flight ----------------------------------------------------------------------

    def fetch_slow(self, key, loader, kind, tags) -> Fetched:
        stats = metrics.stats_for(keys.key_prefix_of(key))
        if self.l1 is not None:
            stats.miss_l1()
        with self._inflight_lock:
            future = self._inflight.get(key)
            leader = future is None
            if leader:
                future = self._inflight[key] = Future()
        if not leader:
            return future.result()
        try:
            result = self._fetch(key, loader, kind, tags, stats)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)

    # --- L2 + leases ------------------------------------------------------------------------

    def _fetch(self, key, loader, kind, tags, stats) -> Fetched:
        since = self.l1.since() if self.l1 is not None else (0, 0)
        vkey = keys.value_key(key)
        try:
            raw = self.l2.get(vkey)
        except L2Unavailable:
            return self._load_without_l2(key, loader, kind, tags, stats, since, stale=None)
        if self.pending_tags:
            self.retry_pending_invalidations()
        early = False
        stale = None
        if raw is not None:
            env = Envelope(raw)
            now = time.time()
            if now < env.soft_expiry:
                if not self._xfetch(env, now):
                    stats.hit_l2()
                    self.put_l1(key, env.value, env.tags, env.soft_expiry, env.filled_at, env.nbytes, stats, since)
                    return Fetched(env.value, HIT_L2, env.filled_at)
                early = True
            stale = env
        else:
            stats.miss_l2()
        return self._load_with_lease(key, vkey, loader, kind, tags, stats, since, stale, early)

    def _xfetch(self, env: Envelope, now: float) -> bool:
        """XFetch (Vattani et al.): refresh early with a probability that grows as the soft
        expiry nears, scaled by how long the value took to compute."""
        beta = self.conf.xfetch_beta
        if not beta or not env.cost:
            return False
        return now - env.cost * beta * math.log(1.0 - random.random()) >= env.soft_expiry

    def _load_with_lease(self, key, vkey, loader, kind, tags, stats, since, stale, early) -> Fetched:
        conf = self.conf
        lkey = keys.lease_key(key)
        seq_key = keys.sequence_key()
        token = os.urandom(8).hex()
        seen = stale.filled_raw.decode() if stale is not None else ""
        lease_ms = int(conf.lease_ttl * 1000)
        deadline = time.monotonic() + conf.lease_wait
        delay = 0.002
        while True:
            try:
                status, payload = self.l2.acquire(vkey, lkey, seq_key, token, lease_ms, seen)
            except L2Unavailable:
                return self._load_without_l2(key, loader, kind, tags, stats, since, stale)
            if status == 2:  # filled meanwhile by another process
                env = Envelope(payload)
                stats.hit_l2()
                self.put_l1(key, env.value, env.tags, env.soft_expiry, env.filled_at, env.nbytes, stats, since)
                return Fetched(env.value, HIT_L2, env.filled_at)
            start_seq = int(payload)
            if status == 1:
                return self._load_and_fill(key, vkey, lkey, loader, kind, tags, stats, token, start_seq, stale, since)
            if stale is not None:  # another process refreshes: serve what we have
                if early:
                    stats.hit_l2()
                    return Fetched(stale.value, HIT_L2, stale.filled_at)
                stats.stale_l2()
                return Fetched(stale.value, STALE, stale.filled_at)
            if time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        # The lease holder is too slow or gone: load ourselves. fill.lua will not overwrite a
        # value while another process holds the lease.
        logger.warning("cache lease wait for %s exceeded %.1fs: loading without the lease", key, conf.lease_wait)
        return self._load_and_fill(key, vkey, lkey, loader, kind, tags, stats, "", start_seq, None, since)

    def _run_loader(self, loader, stats):
        started = time.perf_counter()
        value = loader()
        cost = time.perf_counter() - started
        stats.loaded(cost)
        return value, cost

    def _entry_for(self, value, kind, tags, cost):
        if isinstance(value, QuerySet):
            raise TypeError("refusing to cache a QuerySet (lazy, re-queries on use): cache list(qs) or values")
        conf = self.conf
        spec = conf.kind(NEGATIVE_KIND if value is None else kind)
        ttl = conf.jittered(spec.ttl)
        filled_at = time.time()
        soft_expiry = filled_at + ttl
        envelope = encode(value, tags, soft_expiry, filled_at, cost)
        return envelope, filled_at, soft_expiry, ttl + spec.grace

    def _load_and_fill(self, key, vkey, lkey, loader, kind, tags, stats, token, start_seq, stale, since) -> Fetched:
        try:
            value, cost = self._run_loader(loader, stats)
        except self.conf.loader_errors as exc:
            self._release(lkey, token)
            if stale is None:
                raise
            if time.time() < stale.soft_expiry:  # an early (XFetch) refresh failed: still fresh
                stats.hit_l2()
                return Fetched(stale.value, HIT_L2, stale.filled_at)
            logger.warning("loader for %s failed (%s): serving the stale value", key, exc)
            stats.stale_l2()
            return Fetched(stale.value, STALE, stale.filled_at)
        except BaseException:
            self._release(lkey, token)
            raise
        tags = resolve_tags(tags, value)
        envelope, filled_at, soft_expiry, hard_ttl = self._entry_for(value, kind, tags, cost)
        bucket_keys, expire_at = self.bucket_keys_for(tags, filled_at + hard_ttl)
        try:
            stored = self.l2.fill(
                vkey, lkey, [keys.tag_invalidated_key(t) for t in tags], bucket_keys,
                token=token, start_seq=start_seq, envelope=envelope,
                ttl_ms=int(hard_ttl * 1000), buckets_expire_at=expire_at,
            )
        except L2Unavailable:
            stored = None
        if stored == 0:
            # A tag was invalidated while we loaded: the value may predate the write. Hand it to
            # this caller (its request began before the invalidation) but cache it nowhere.
            metrics.count_invalidation("rejected_fill")
        else:
            # Stored in L2: guard L1 with the sequence at lease time (an invalidation after it that
            # reached us meanwhile refuses the put); Redis unreachable: with the local mark.
            if stored is not None:
                since = (start_seq, since[1])
            self.put_l1(key, value, tags, soft_expiry, filled_at, len(envelope), stats, since)
        return Fetched(value, MISS, filled_at)

    def _load_without_l2(self, key, loader, kind, tags, stats, since, stale) -> Fetched:
        try:
            value, cost = self._run_loader(loader, stats)
        except self.conf.loader_errors as exc:
            if stale is None:
                raise
            logger.warning("loader for %s failed (%s): serving the stale value", key, exc)
            stats.stale_l2()
            return Fetched(stale.value, STALE, stale.filled_at)
        tags = resolve_tags(tags, value)
        envelope, filled_at, soft_expiry, _ = self._entry_for(value, kind, tags, cost)
        self.put_l1(key, value, tags, soft_expiry, filled_at, len(envelope), stats, since)
        return Fetched(value, MISS, filled_at)

    def _release(self, lkey, token) -> None:
        if not token:
            return
        try:
            self.l2.release(lkey, token)
        except L2Unavailable:
            pass  # the lease expires by itself after LEASE_TTL

    def bucket_keys_for(self, tags, hard_expiry: float) -> tuple[list, int]:
        width = self.conf.tag_bucket_seconds
        bucket = int(hard_expiry // width)
        return [keys.tag_bucket_key(t, bucket) for t in tags], (bucket + 1) * width + 60

    # --- bulk ---------------------------------------------------------------------------------

    def fetch_many(self, keys_to_args: dict, bulk_loader, kind, tags_for) -> dict:
        result = {}
        missing = []
        l1 = self.l1
        for key in keys_to_args:
            entry = l1.get(key) if l1 is not None else None
            if entry is not None:
                entry.stats.hit_l1()
                result[key] = entry.value
            else:
                if l1 is not None:
                    metrics.stats_for(keys.key_prefix_of(key)).miss_l1()
                missing.append(key)
        if not missing:
            return result
        since = l1.since() if l1 is not None else (0, 0)
        vkeys = [keys.value_key(k) for k in missing]
        try:
            raws, start_seq = self.l2.mget_and_sequence(vkeys, keys.sequence_key())
        except L2Unavailable:
            raws, start_seq = [None] * len(missing), None
        now = time.time()
        to_load = {}
        stale = {}
        for key, raw in zip(missing, raws, strict=True):
            stats = metrics.stats_for(keys.key_prefix_of(key))
            if raw is not None:
                env = Envelope(raw)
                if now < env.soft_expiry:
                    stats.hit_l2()
                    result[key] = env.value
                    self.put_l1(key, env.value, env.tags, env.soft_expiry, env.filled_at, env.nbytes, stats, since)
                    continue
                stale[key] = env
            elif start_seq is not None:
                stats.miss_l2()
            to_load[key] = keys_to_args[key]
        if not to_load:
            return result
        stats = metrics.stats_for(keys.key_prefix_of(next(iter(to_load))))
        try:
            loaded, cost = self._run_loader(lambda: bulk_loader(to_load), stats)
        except self.conf.loader_errors as exc:
            if len(stale) < len(to_load):
                raise
            logger.warning("bulk loader failed (%s): serving %d stale values", exc, len(stale))
            for key, env in stale.items():
                result[key] = env.value
            return result
        cost = cost / len(to_load)
        fills, entries = [], []
        for key in to_load:
            value = loaded.get(key)
            result[key] = value
            tags = resolve_tags(lambda v, k=key: tags_for(k, v), value) if tags_for else ()
            envelope, filled_at, soft_expiry, hard_ttl = self._entry_for(value, kind, tags, cost)
            bucket_keys, expire_at = self.bucket_keys_for(tags, filled_at + hard_ttl)
            fills.append((
                [keys.value_key(key), keys.lease_key(key), *[keys.tag_invalidated_key(t) for t in tags], *bucket_keys],
                ["", start_seq or 0, envelope, int(hard_ttl * 1000), len(tags), expire_at],
            ))
            entries.append((key, value, tags, soft_expiry, filled_at, len(envelope)))
        stored = [None] * len(fills)
        if start_seq is not None:
            try:
                stored = self.l2.fill_many(fills)
            except L2Unavailable:
                stored = [None] * len(fills)
        for (key, value, tags, soft_expiry, filled_at, nbytes), ok in zip(entries, stored, strict=True):
            if ok == 0:
                metrics.count_invalidation("rejected_fill")
                continue
            fill_since = (start_seq, since[1]) if ok is not None else since
            stats = metrics.stats_for(keys.key_prefix_of(key))
            self.put_l1(key, value, tags, soft_expiry, filled_at, nbytes, stats, fill_since)
        return {key: result[key] for key in keys_to_args}

    # --- invalidation -------------------------------------------------------------------------

    def invalidate(self, tags: list[str]) -> None:
        conf = self.conf
        width = conf.tag_bucket_seconds
        now = time.time()
        first, last = int(now // width), int((now + conf.max_hard_ttl) // width) + 1
        bucket_keys = [keys.tag_bucket_key(t, b) for t in tags for b in range(first, last + 1)]
        try:
            seq, deleted = self.l2.invalidate(
                keys.sequence_key(),
                [keys.tag_invalidated_key(t) for t in tags],
                bucket_keys,
                ttl=conf.tag_invalidation_ttl,
                channel=keys.invalidation_channel(),
                tags=tags,
            )
        except L2Unavailable as exc:
            # L2 keeps its entries until Redis is back: remember the tags and replay them on
            # the next successful Redis call. Our own L1 is cleaned now.
            if len(self.pending_tags) < _PENDING_MAX:
                self.pending_tags.update(tags)
            else:
                logger.error("pending invalidation backlog full: L2 may serve stale data until TTL")
            logger.error("invalidation of %d tags could not reach Redis (%s): queued for replay", len(tags), exc)
            metrics.count_invalidation("failed", len(tags))
            if self.l1 is not None:
                self.l1.invalidate(None, tags)
            return
        metrics.count_invalidation("tag", len(tags))
        if self.l1 is not None:
            self.l1.invalidate(seq, tags)  # ours now; the broadcast echo is idempotent

    def retry_pending_invalidations(self) -> None:
        tags, self.pending_tags = sorted(self.pending_tags), set()
        if tags:
            logger.warning("replaying %d invalidations queued while Redis was unreachable", len(tags))
            self.invalidate(tags)


# --- the process singleton ----------------------------------------------------------------------

_process: _Process | None = None
_process_lock = threading.Lock()


def current() -> _Process:
    """This process's cache state (created on first use, re-created after fork or settings change)."""
    proc = _process
    if proc is None:
        proc = _init_process()
    return proc


def _init_process() -> _Process:
    global _process
    with _process_lock:
        if _process is None:
            proc = _Process(_get_conf())
            sub = proc.ensure_subscriber()
            if sub is not None:
                # The first subscription clears L1; wait for it (a few ms, once per process) so
                # the first fills are not thrown away. Redis down: give up after FIRST_SUBSCRIBE_WAIT.
                sub.wait_subscribed(FIRST_SUBSCRIBE_WAIT)
            _process = proc
        return _process


def reset() -> None:
    """Drop this process's state (L1, client, breaker, subscriber). Used on settings changes.
    The old subscriber thread is told to stop and exits within a second by itself."""
    global _process
    with _process_lock:
        proc, _process = _process, None
    if proc is not None and proc.subscriber is not None:
        proc.subscriber.stop(timeout=0)
    conf_module.reset()


def _after_fork_in_child() -> None:
    # Locks, threads and the subscription do not survive fork: start afresh, lazily.
    global _process, _process_lock
    _process = None
    _process_lock = threading.Lock()
    metrics.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


# --- public API ---------------------------------------------------------------------------------


def fetch(key: str, loader, *, kind: str, tags=()) -> Fetched:
    """Return the cached value of `key` as a Fetched(value, source, filled_at), calling
    `loader()` at most once across all processes when it is cold or expired.

    `tags`: iterable of tag strings, or a callable(value) -> tags (known only after the load).
    A loader returning None is cached (kind "negative" TTL), distinct from a miss. Cost: L1 hit
    ~1-2 us and no Redis; L2 hit one GET; miss a lease script, the loader, a fill script.
    """
    conf = _get_conf()
    if not conf.enabled:
        return Fetched(loader(), MISS, time.time())
    proc = _process or _init_process()
    l1 = proc.l1
    if l1 is not None:
        entry = l1.get(key)
        if entry is not None:
            entry.stats.hit_l1()
            return entry
    return proc.fetch_slow(key, loader, kind, tags)


def get_or_load(key: str, loader, *, kind: str, tags=()):
    """fetch(...).value."""
    return fetch(key, loader, kind=kind, tags=tags).value


def get_many_or_load(keys_to_args: dict, bulk_loader, *, kind: str, tags_for=None) -> dict:
    """Bulk fetch (Zulip's generic_bulk_cached_fetch): L1, then one Redis round trip for all the
    rest, then ONE `bulk_loader({key: args})` call for the misses, then one pipelined backfill.

    `bulk_loader` returns {key: value}; a key it leaves out is cached as None (negative).
    `tags_for(key, value)` gives each entry's tags. Returns {key: value} in the input order.
    Bulk misses take no lease (a stampede on a whole page of keys costs one bulk query per
    process at worst); stale-set protection still applies.
    """
    conf = _get_conf()
    if not conf.enabled:
        loaded = bulk_loader(dict(keys_to_args))
        return {key: loaded.get(key) for key in keys_to_args}
    return current().fetch_many(dict(keys_to_args), bulk_loader, kind, tags_for)


def cached(*, kind: str, key, tags=()):
    """Decorator for selectors: `@cached(kind="article", key=keys.article_key, tags=lambda a: [...])`.

    `key(*args, **kwargs)` builds the cache key from the call's arguments; `tags` as in fetch().
    The undecorated function stays reachable as `.uncached`.
    """

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return fetch(key(*args, **kwargs), functools.partial(func, *args, **kwargs), kind=kind, tags=tags).value

        wrapper.uncached = func
        wrapper.cache_key = key
        return wrapper

    return decorator


def clear_local() -> None:
    """Empty this process's L1 and forget queued invalidations (tests; L2 is untouched)."""
    proc = _process
    if proc is not None:
        if proc.l1 is not None:
            proc.l1.clear()
        proc.pending_tags.clear()
