"""The fetch face: `fetch()` of one key, single-flight inside the process, leases across them.

fetch(key, loader, kind=..., tags=...):
  L1 hit                      -> the L1 entry itself (no Redis, no allocation)
  L1 miss -> in-process single-flight per key (one thread loads, the others share its Future)
          -> SET value-key "~token" NX GET (one command; on a present key it writes nothing)
             fresh            -> HIT-L2, backfill L1
             fresh but XFetch -> early refresh: acquire.lua's lease, else serve it (HIT-L2)
             stale            -> acquire.lua: lease taken -> load + fill.lua; held -> STALE
             absent           -> the value key now holds our lease: load, fill.lua (refused if a
                                 tag was invalidated after the lease; stores, indexes, releases):
                                 a cold miss is 2 round trips
             another's lease  -> poll the same read until the value appears or the lease is ours
  Redis unreachable/breaker open -> loader, L1 only.

The face owns the envelope format (caching/envelope.py) and the tag bookkeeping; L1, L2 and
the subscriber are the engine's (caching/engine.py). Its parts, one module each: what a load
becomes (its entry, fill.lua, its L1 copy: caching/fill.py, `face.fills`), the WSGI front's L2
read done early (caching/early_read.py), the invalidations of this process
(caching/invalidator.py, `face.invalidator`). Bulk reads: caching/bulk.py.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import IntEnum

from caching import conf as conf_module
from caching import engine as engine_module
from caching import fence, keys, lifetime, metrics
from caching.broadcast import DOWN
from caching.early_read import EarlyRead
from caching.envelope import LEASE_MARK, Envelope, is_lease
from caching.fill import Filled, Fills, resolve_tags
from caching.invalidator import AppTierInvalidator
from caching.l1 import FILLED_AT, HIT_L1, HIT_L2, MISS, PREFIX, STALE, VALUE, Fetched, FillGuard
from caching.l2 import L2Unavailable
from caching.metrics import PrefixStats

logger = logging.getLogger(__name__)

_get_conf = conf_module.get

NO_FLIGHT = (None, None)  # inflight.get()'s default: no load of the key in this process


class CallersOwnRefusal(Exception):  # noqa: N818 (it names the situation)
    """Raised by a loader to refuse the caller it runs for, not the key (e.g. a project's
    per-client budget). Single-flight followers in the process do not share it: each
    then loads for itself, outside the single-flight. List it in LOADER_ERRORS too for a stale
    value to answer it."""


class LeaseTimeout(Exception):  # noqa: N818 (it names the situation, as TimeoutError does)
    """A cold key's loader is running in another process for longer than LEASE_WAIT and there
    is no stale value to serve. Callers answer fast (HTTP: 503 with Retry-After) instead of
    adding one more load to a database that is already slow."""

    def __init__(self, key: str, waited: float):
        super().__init__(f"{key}: another process is still loading it after {waited:.1f}s")
        self.key = key
        self.waited = waited


class Acquired(IntEnum):
    """acquire.lua's answer."""

    HELD = 0  # another process holds the lease
    LEASED = 1  # ours: load and fill
    FILLED = 2  # somebody filled the key since we looked: use it


@dataclass(slots=True)
class Load:
    """One key being fetched past L1: what to load and what the fill must not be overtaken by."""

    key: str
    vkey: str
    loader: Callable
    kind: str
    tags: object  # iterable of tags, or callable(value) -> tags
    stats: PrefixStats
    guard: FillGuard


class FetchFace:
    """The fetch face's per-process state over the default engine: the loads in flight (the
    single-flight), its fills (`fills`) and its invalidator (`invalidator`: the invalidations
    still to replay to Redis included)."""

    def __init__(self, engine, conf):
        self.engine = engine
        self.conf = conf
        self.l1 = engine.l1
        self.l2 = engine.l2
        self.namespace = engine.namespace
        self.inflight: dict[str, tuple[Future, tuple]] = {}  # key -> (its load, applied_mark() then)
        self._inflight_lock = threading.Lock()
        self.fills = Fills(engine, conf)  # what a load becomes: its entry, fill.lua, its L1 copy
        self.invalidator = AppTierInvalidator(self)  # the invalidations asked for in this process
        # Without L1: the highest sequence seen from Redis (fills, our invalidations), the mark
        # of a fill (any invalidation up to it came before the read that follows).
        self.seen_seq = 0

    def fill_guard(self) -> FillGuard:
        """What a fill must not have been overtaken by since now (L1's mark; without L1, the
        highest sequence seen from Redis)."""
        return self.l1.since() if self.l1 is not None else FillGuard(self.seen_seq, 0)

    def applied_mark(self) -> tuple:
        """What this process has applied: L1's epoch (a clear bumps it) and latest invalidation
        sequence (without L1: the face's). A single-flight load is joined only while it is the
        same as when the load began (fetch_slow, and afetch's flights)."""
        l1 = self.l1
        return (l1.epoch, l1.seen_seq) if l1 is not None else (0, self.seen_seq)

    def joinable(self, began: tuple, applied: tuple) -> bool:
        """May a caller whose applied_mark() is `applied` join a load that began at `began`? Only
        if nothing was applied since and nothing is arriving: a message that reached this process
        unapplied (the subscriber lagging past a write's BROADCAST_WAIT) may be the invalidation
        of a write that has returned, which the load's L2 read may predate - as L1.get() does
        not answer from L1 then, the caller does not take the load's answer."""
        return began == applied and not (self.l1 is not None and self.l1.unapplied())

    # --- single-flight ----------------------------------------------------------------------

    def fetch_slow(self, key, loader, kind, tags, early_read: EarlyRead | None = None) -> Fetched:
        stats = metrics.stats_for(keys.key_prefix_of(key))
        if self.l1 is not None:
            stats.miss_l1()
        applied = self.applied_mark()
        with self._inflight_lock:
            # A load that began before an invalidation this process has applied since may have
            # read L2 before a write that has returned: not joined (read-your-writes), a new one
            # starts and later callers join that.
            flight = self.inflight.get(key)
            leader = flight is None or not self.joinable(flight[1], applied)
            if leader:
                flight = self.inflight[key] = (Future(), applied)
            future = flight[0]
            del flight  # only `future` is dropped on an error (below): no cycle through this frame
        if not leader:
            if early_read is not None:
                # Another thread of this process is loading the key: a lease this read took
                # would keep that leader (polling for the holder) waiting on us.
                early_read.give_back()
            try:
                return future.result()
            except CallersOwnRefusal:
                pass  # the leader's loader refused its own caller (a per-client budget): not ours
            # Load for ourselves, outside the single-flight (its next leader may be refused too);
            # across processes the key's lease still makes it one load.
            return self._fetch(Load(key, keys.value_key(self.namespace, key), loader, kind, tags, stats, self.fill_guard()),
                               None)
        try:
            load = Load(key, keys.value_key(self.namespace, key), loader, kind, tags, stats,
                        early_read.guard if early_read is not None else self.fill_guard())
            result = self._fetch(load, early_read)
        except BaseException as exc:
            future.set_exception(exc)
            # The followers hold the future; this frame's reference would make a cycle (the
            # exception's traceback holds this frame), keeping every frame of the request and
            # its objects alive until a full collection, which holds the GIL (issue 15: the
            # 503s of a database outage, one such cycle each, made 30-115 ms collections).
            del future
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._inflight_lock:
                # Ours (this call's mark), not a newer load's. No local bound to the flight: it
                # holds the future, whose exception's traceback holds this frame (a cycle).
                if self.inflight.get(key, NO_FLIGHT)[1] is applied:
                    del self.inflight[key]

    # --- L2 + leases ------------------------------------------------------------------------

    def read_l2(self, vkey: str) -> tuple[str, int, bytes | None]:
        """The fetch's L2 read: SET NX GET with a new lease (lease, its ms, what it answered);
        then what an answer from Redis tells this process (its subscription can come back, its
        queued invalidations can be sent). Raises L2Unavailable."""
        lease = LEASE_MARK + os.urandom(8).hex()
        lease_ms = int(self.conf.lease_ttl * 1000)
        raw = self.l2.get_or_lease(vkey, lease, lease_ms)
        sub = self.engine.subscriber
        if sub is not None and sub.state == DOWN:
            sub.redis_is_back()
        if self.invalidator.pending_tags:
            self.invalidator.replay_pending()
        return lease, lease_ms, raw

    def _fetch(self, load: Load, early_read: EarlyRead | None = None) -> Fetched:
        if early_read is not None:
            early_read.used = True
            if early_read.unavailable:
                return self._load_without_l2(load, stale=None)
            lease, lease_ms, raw = early_read.lease, early_read.lease_ms, early_read.raw
        else:
            try:
                lease, lease_ms, raw = self.read_l2(load.vkey)
            except L2Unavailable:
                return self._load_without_l2(load, stale=None)
        if raw is None:  # absent: the value key now holds our lease
            load.stats.miss_l2()
            return self._load_and_fill(load, lease, lease_ms, None)
        if is_lease(raw):  # absent, another process is loading it
            load.stats.miss_l2()
            return self._wait_for_holder(load, lease, lease_ms)
        decoded = early_read is not None and early_read.env is not None
        env = early_read.env if decoded else Envelope(raw)
        now = time.time()
        early = False
        if now < env.soft_expiry:
            if not (early_read.early_refresh if decoded else self.xfetch(env, now)):
                load.stats.hit_l2()
                superseded = self.fills.put_envelope(load.key, env, load.stats, load.guard)
                return Fetched(env.value, HIT_L2, env.filled_at, superseded)
            early = True
        return self._refresh(load, env, early)

    def xfetch(self, env: Envelope, now: float) -> bool:
        """XFetch (Vattani et al.): refresh early with a probability that grows as the soft
        expiry nears, scaled by how long the value took to compute."""
        beta = self.conf.xfetch_beta
        if not beta or not env.cost:
            return False
        return now - env.cost * beta * math.log(1.0 - random.random()) >= env.soft_expiry

    def _wait_for_holder(self, load: Load, lease: str, lease_ms: int) -> Fetched:
        """A cold key another process is loading: poll the same SET NX GET (2..50 ms backoff)
        until its value appears (HIT-L2), the lease is gone (released after a failed
        load, or expired with a dead holder: ours now, load) or LEASE_WAIT passes."""
        conf = self.conf
        deadline = time.monotonic() + conf.lease_wait
        delay = 0.002
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            try:
                raw = self.l2.get_or_lease(load.vkey, lease, lease_ms)
            except L2Unavailable:
                return self._load_without_l2(load, stale=None)
            if raw is None:
                return self._load_and_fill(load, lease, lease_ms, None)
            if not is_lease(raw):
                env = Envelope(raw)
                load.stats.hit_l2()
                superseded = self.fills.put_envelope(load.key, env, load.stats, load.guard)
                return Fetched(env.value, HIT_L2, env.filled_at, superseded)
        # The holder is alive (a dead one's lease expires after LEASE_TTL and the loop above
        # takes it over) but slow: the database is struggling. Every waiter loading now would
        # be the stampede the lease exists to prevent.
        metrics.count_invalidation("lease_timeout")
        logger.warning("cache lease wait for %s exceeded %.1fs: answering busy", load.key, conf.lease_wait)
        raise LeaseTimeout(load.key, conf.lease_wait)

    def _refresh(self, load: Load, stale: Envelope, early: bool) -> Fetched:
        """A soft-expired value (or an XFetch early refresh): one process takes the key's
        refresh lease (acquire.lua) and reloads; the others serve what they read."""
        token = os.urandom(8).hex()
        lkey = keys.lease_key(self.namespace, load.key)
        try:
            status, payload = self.l2.script(
                "acquire", [load.vkey, lkey, self.engine.sequence_key],
                [token, int(self.conf.lease_ttl * 1000), stale.filled_raw],
            )
        except L2Unavailable:
            return self._load_without_l2(load, stale)
        status = Acquired(int(status))
        if status is Acquired.FILLED:
            env = Envelope(payload)
            load.stats.hit_l2()
            superseded = self.fills.put_envelope(load.key, env, load.stats, load.guard)
            return Fetched(env.value, HIT_L2, env.filled_at, superseded)
        if status is Acquired.LEASED:
            return self._load_and_fill(load, token, int(payload), stale)
        if early:  # another process refreshes: serve what we have
            load.stats.hit_l2()
            return self.fills.served_stale(stale, HIT_L2)
        load.stats.stale_l2(time.time() - stale.filled_at)
        return self.fills.served_stale(stale, STALE)

    def _load_and_fill(self, load: Load, lease: str, start: int, stale: Envelope | None,
                       primary: bool = False) -> Fetched:
        """Load under `lease` (see fill_call) and fill: one fill.lua call that checks the tags,
        stores, indexes and releases the lease, so a cold miss costs the read + this = 2 round
        trips. A failed load releases the lease instead (also one call); a cached 404 is a fill (admission).
        A load that read a replica which had not replayed a write one of its tags was
        invalidated after (Filled.BEHIND) is loaded again from the primary under the same lease
        (REPLICA_BEHIND "reread": one more load and fill.lua call) or answered uncached."""
        try:
            loaded = self.fills.run_fenced_loader(load.loader, load.stats, primary=primary)
        except self.conf.loader_errors as exc:
            self._release(load, lease)
            if stale is None:
                raise
            if time.time() < stale.soft_expiry:  # an early (XFetch) refresh failed: still fresh
                load.stats.hit_l2()
                return self.fills.served_stale(stale, HIT_L2)
            logger.warning("loader for %s failed (%s): serving the stale value", load.key, exc)
            load.stats.stale_l2(time.time() - stale.filled_at)
            return self.fills.served_stale(stale, STALE)
        except BaseException:
            self._release(load, lease)
            raise
        value, read_at = loaded.value, loaded.read_at
        entry = self.fills.entry_for(value, load.kind, resolve_tags(load.tags, value), loaded.cost, loaded.until)
        fill_keys, fill_args = self.fills.fill_call(load.key, entry, lease=lease, start=start, seen=load.guard.seq)
        claim = self.fills.fenced(fill_keys, fill_args, entry, read_at) if read_at is not None else ""
        try:
            status, seq, newest, claimed = self.l2.script("fill", fill_keys, fill_args)
            stored, seq = Filled(int(status)), int(seq)
            if seq > self.seen_seq:
                self.seen_seq = seq
            if read_at is not None:
                fence.writes.saw(int(newest))
        except L2Unavailable:
            stored, seq, claimed = None, 0, 0
        if int(claimed):
            self.fills.seed_floor(claim)
        if stored is Filled.BEHIND:
            # The replica had not replayed a write one of the value's tags was invalidated
            # after: the value may be the old version. Stored nowhere; read the primary instead.
            fence.count_fallback("fence")
            if self.conf.reread_behind:
                return self._load_and_fill(load, lease, start, stale, primary=True)
            self._release(load, lease)
            return Fetched(value, MISS, entry.filled_at, superseded=True)
        if stored is None and read_at is not None:
            # Redis went away between the read and the fill: nothing vouches for the replica's
            # read. Answered, not kept (L1 included).
            return Fetched(value, MISS, entry.filled_at, superseded=True)
        if stored is Filled.REFUSED:
            # A tag was invalidated while we loaded: the value may predate the write. Hand it to
            # this caller (its request began before the invalidation) but cache it nowhere.
            metrics.count_invalidation("rejected_fill")
            return Fetched(value, MISS, entry.filled_at, superseded=True)
        # Checked in Redis (stored, not admitted, or another holder's): guard L1 with the
        # sequence fill.lua checked the tags up to (an invalidation after it that reached us
        # meanwhile refuses the put); unchecked (Redis unreachable, our lease lost): with the
        # local mark.
        guard = load.guard._replace(seq=seq) if seq else load.guard
        superseded = self.fills.put_entry(load.key, entry, load.stats, guard)
        return Fetched(value, MISS, entry.filled_at, superseded, shared=stored is not Filled.NOT_ADMITTED)

    def _load_without_l2(self, load: Load, stale: Envelope | None) -> Fetched:
        """Redis unreachable: load (from the primary when replicas are fenced: there are no
        marks to check a replica's read against) and keep the value in L1 only."""
        if self.conf.fence is not None:
            fence.count_fallback("no_l2")
        try:
            loaded = self.fills.run_fenced_loader(load.loader, load.stats, primary=True)
        except self.conf.loader_errors as exc:
            if stale is None:
                raise
            logger.warning("loader for %s failed (%s): serving the stale value", load.key, exc)
            load.stats.stale_l2(time.time() - stale.filled_at)
            return self.fills.served_stale(stale, STALE)
        entry = self.fills.entry_for(loaded.value, load.kind, resolve_tags(load.tags, loaded.value), loaded.cost, loaded.until)
        superseded = self.fills.put_entry(load.key, entry, load.stats, load.guard)
        return Fetched(loaded.value, MISS, entry.filled_at, superseded)

    def _release(self, load: Load, lease: str) -> None:
        """Give up a lease we hold (release.lua: only if it is still ours)."""
        key = load.vkey if lease.startswith(LEASE_MARK) else keys.lease_key(self.namespace, load.key)
        try:
            self.l2.script("release", [key], [lease])
        except L2Unavailable:
            pass  # the lease expires by itself after LEASE_TTL

# --- this process's face ------------------------------------------------------------------------

_face: FetchFace | None = None
_face_lock = threading.Lock()


def current() -> FetchFace:
    """This process's fetch face (created on first use, again after fork or a settings change)."""
    global _face
    face = _face
    if face is None:
        with _face_lock:
            if _face is None:
                _face = FetchFace(engine_module.default(), _get_conf())
            face = _face
    return face


def _forget() -> None:
    global _face, _face_lock
    _face = None
    _face_lock = threading.Lock()


engine_module.on_reset.append(_forget)


def fetch(key: str, loader, *, kind: str, tags=(), bypass_l1: bool = False,
          early_read: EarlyRead | None = None) -> Fetched:
    """Return the cached value of `key` as a Fetched(value, source, filled_at, superseded),
    calling `loader()` at most once across all processes when it is cold or expired.

    `tags`: iterable of tag strings, or a callable(value) -> tags (known only after the load).
    A loader returning None is cached (kind "negative" TTL), distinct from a miss.
    `bypass_l1`: start at L2 (an edge re-fetch after a purge must not get an L1 copy that the
    broadcast has not reached yet); L1 is still backfilled.
    `early_read`: the WSGI front's L2 read of this key, after its L1 miss (caching/early_read.py):
    the fetch continues from it instead of reading L1 and L2 again; ignored for another key.
    Raises LeaseTimeout when another process has been loading the key for LEASE_WAIT and
    there is no stale value. Cost: L1 hit ~1-2 us and no Redis; L2 hit one command (SET NX GET);
    cold miss that command (it takes the lease), the loader, one fill script.
    """
    if not _get_conf().enabled:
        with lifetime.measure():  # nothing is stored, but a response's headers are still capped
            return Fetched(loader(), MISS, time.time())
    face = _face or current()
    if early_read is not None and early_read.key == key and not early_read.used:
        return face.fetch_slow(key, loader, kind, tags, early_read)
    l1 = face.l1
    if l1 is not None and not bypass_l1:
        hit = l1_hit(l1, key)
        if hit is not None:
            return hit
    return face.fetch_slow(key, loader, kind, tags)


def l1_hit(l1, key: str) -> Fetched | None:
    """`key`'s live L1 entry as what fetch() returns, counted as an L1 hit; None on a miss (not
    counted: the slow path counts it). One implementation for fetch and fetch_many; afetch and
    afetch_many look up with `await l1.aget(key)` and shape the entry with l1_served()."""
    entry = l1.get(key)
    if entry is None:
        return None
    metrics.stats_for(entry[PREFIX]).hit_l1()
    return Fetched(entry[VALUE], HIT_L1, entry[FILLED_AT])


def l1_served(entry: tuple) -> Fetched:
    """An L1 entry found by L1.aget() as what afetch() returns, counted as an L1 hit (l1_hit's
    second half: the sync hit path keeps it inline, one call fewer)."""
    metrics.stats_for(entry[PREFIX]).hit_l1()
    return Fetched(entry[VALUE], HIT_L1, entry[FILLED_AT])


def get_or_load(key: str, loader, *, kind: str, tags=()):
    """fetch(...).value."""
    return fetch(key, loader, kind=kind, tags=tags).value


def clear_local() -> None:
    """Empty this process's L1s and forget queued invalidations (tests; L2 is untouched)."""
    engine_module.clear_local()
    face = _face
    if face is not None:
        face.invalidator.pending_tags.clear()
