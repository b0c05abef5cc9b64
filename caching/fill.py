"""What a load becomes in the tiers, for fetch() (caching/fetcher.py) and fetch_many()
(caching/bulk.py): the loader's run (timed, capped by caching.lifetime, its replica reads fenced
by caching.fence), the entry (envelope head and body, soft and hard expiry), the keys and
arguments of fill.lua (tag index, doorkeeper, fence) and the copy in this process's L1 (refused
when an invalidation overtook it: the value is superseded).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from dataclasses import dataclass
from enum import IntEnum

from django.db.models.query import QuerySet

from caching import envelope, fence, keys, lifetime
from caching import l1 as l1_module
from caching.conf import NEGATIVE_KIND
from caching.envelope import Envelope
from caching.l1 import Fetched, FillGuard, Put
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)

MIN_LIFETIME = 0.001  # s: a value whose moment has come is stored for a millisecond (Redis PX >= 1)


class Filled(IntEnum):
    """fill.lua's answer."""

    SKIPPED = -1  # another process holds the lease
    REFUSED = 0  # a tag was invalidated after the load started: the value may be superseded
    STORED = 1
    NOT_ADMITTED = 2  # first sight of a "second_hit" key: L1 only
    BEHIND = 3  # read from a replica that had not replayed a write a tag was invalidated after


@dataclass(slots=True)
class Loaded:
    """One run of a loader: its value, what it cost (s), the moment the value stops being true
    (caching.lifetime; None: no limit) and the lowest replica replay position it read
    (caching.fence; None: the primary only)."""

    value: object
    cost: float
    until: float | None
    read_at: int | None = None


@dataclass(slots=True)
class Entry:
    """A loaded value ready for the tiers."""

    value: object
    tags: tuple
    head: bytes  # the envelope without its sequence and body (caching/envelope.py)
    body: bytes
    filled_at: float
    soft_expiry: float
    hard_ttl: float
    admission: str = "always"


def resolve_tags(tags, value) -> tuple:
    """`tags` is an iterable of strings or a callable(value) returning one."""
    if callable(tags):
        tags = tags(value)
    return tuple(dict.fromkeys(tags)) if tags else ()


class Fills:
    """The fills of one engine under one configuration (the fetch face's: FetchFace.fills)."""

    def __init__(self, engine, conf):
        self.engine = engine  # its l1, l2 and namespace
        self.conf = conf

    def put_l1(self, key, value, tags, soft_expiry, filled_at, nbytes, stats, guard: FillGuard) -> bool:
        """Backfill L1. Returns True if L1 refused the value as superseded (an invalidation
        of one of its tags, or a clear, overtook it since `guard` was taken)."""
        l1 = self.engine.l1
        if l1 is None or not self.engine.l1_fills_allowed():
            return False
        conf = self.conf
        ttl = min(conf.l1_ttl * (1.0 - random.random() * conf.jitter), soft_expiry - time.time())
        if ttl <= 0:
            return False
        nbytes = nbytes + l1_module.ENTRY_OVERHEAD + l1_module.TAG_OVERHEAD * len(tags) + len(key)
        entry = l1_module.entry(value, filled_at, tags, nbytes, time.monotonic() + ttl, stats.prefix)
        return l1.put(key, entry, guard) is Put.REFUSED

    def put_envelope(self, key, env: Envelope, stats, guard: FillGuard) -> bool:
        """Backfill L1 with a value read from L2, guarded by the sequence its load started at:
        refused (superseded) if this process knows of a later invalidation of one of its tags."""
        guard = guard._replace(seq=env.seq)
        return self.put_l1(key, env.value, env.tags, env.soft_expiry, env.filled_at, env.nbytes, stats, guard)

    def served_stale(self, env: Envelope, source: str) -> Fetched:
        """An L2 value served as it is (stale while another process refreshes, or an early
        refresh that did not win the lease), superseded if this process knows of a later
        invalidation of one of its tags."""
        l1 = self.engine.l1
        superseded = l1.overtaken(env.tags, env.seq) if l1 is not None else False
        return Fetched(env.value, source, env.filled_at, superseded)

    def put_entry(self, key, entry: Entry, stats, guard: FillGuard) -> bool:
        return self.put_l1(
            key, entry.value, entry.tags, entry.soft_expiry, entry.filled_at, len(entry.head) + 17 + len(entry.body),
            stats, guard
        )

    def run_loader(self, loader, stats) -> Loaded:
        started = time.perf_counter()
        with lifetime.measure() as measured:
            value = loader()
        cost = time.perf_counter() - started
        stats.loaded(cost)
        return Loaded(value, cost, measured.until)

    def entry_for(self, value, kind, tags: tuple, cost, until: float | None = None) -> Entry:
        """The entry of a loaded value: soft expiry after the kind's jittered TTL, hard expiry
        after its grace, both capped at `until` (caching.lifetime: nothing outlives the moment
        its value stops being true, not even as a stale copy)."""
        if isinstance(value, QuerySet):
            raise TypeError("refusing to cache a QuerySet (lazy, re-queries on use): cache list(qs) or values")
        conf = self.conf
        spec = conf.kind(NEGATIVE_KIND if value is None else kind)
        ttl = conf.jittered(spec.ttl)
        hard_ttl = ttl + spec.grace
        filled_at = time.time()
        if until is not None:
            left = max(until - filled_at, MIN_LIFETIME)
            ttl, hard_ttl = min(ttl, left), min(hard_ttl, left)
        soft_expiry = filled_at + ttl
        head = envelope.head(soft_expiry, filled_at, cost)
        return Entry(value, tags, head, envelope.body(value, tags), filled_at, soft_expiry, hard_ttl,
                     spec.admission)

    def fill_call(self, key: str, entry: Entry, *, lease: str, start: int, seen: int = 0) -> tuple:
        """fill.lua's (keys, args) for `entry`: value, lease, tag-invalidated keys, tag buckets.
        `lease`: "~<token>" (in the value key; `start` = its ttl in ms, `seen` = the highest
        sequence this process had seen before the read, for a lease that expired meanwhile),
        "<token>" (the lease key; `start` = the sequence the load started at) or "" (none;
        `start` likewise)."""
        ns = self.engine.namespace
        width = self.conf.tag_bucket_seconds
        bucket = int((entry.filled_at + entry.hard_ttl) // width)
        tag_keys = [keys.tag_invalidated_key(ns, t) for t in entry.tags]
        bucket_keys = [keys.tag_bucket_key(ns, t, bucket) for t in entry.tags]
        fill_keys = [keys.value_key(ns, key), keys.lease_key(ns, key), self.engine.sequence_key,
                     *tag_keys, *bucket_keys]
        args = [lease, start, entry.head, entry.body, int(entry.hard_ttl * 1000), len(tag_keys),
                (bucket + 1) * width + 60]
        if entry.admission == "second_hit":
            conf = self.conf
            period = int(entry.filled_at // conf.doorkeeper_period)
            fill_keys += [keys.doorkeeper_key(ns, period), keys.doorkeeper_key(ns, period - 1)]
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            bits = conf.doorkeeper_bits
            expires_at = (period + 2) * conf.doorkeeper_period  # read as "previous" for one period
            args += [expires_at, int.from_bytes(digest[:4]) % bits, int.from_bytes(digest[4:]) % bits, (bits + 7) // 8]
        else:
            args += ["", "", "", ""]
        args.append(seen)
        return fill_keys, args

    def run_fenced_loader(self, loader, stats, *, primary: bool = False) -> Loaded:
        """run_loader with the lowest replica replay position the load read (`read_at`; None: it
        read the primary only, or no REPLICA_FENCE is configured). `primary`: every read of the
        load goes to the primary (caching/fence.py). A load that read a replica and failed with
        one of LOADER_ERRORS runs again on the primary when the fence says the replica caused
        it (`REPLICA_FENCE.retry_on_primary(exc)`: a recovery conflict, a lost replica); any
        other error is raised (a statement timeout is not run twice)."""
        if self.conf.fence is None:
            return self.run_loader(loader, stats)
        if primary:
            with fence.primary_reads():
                return self.run_loader(loader, stats)
        failed = False
        with fence.load_scope() as reads:
            try:
                loaded = self.run_loader(loader, stats)
            except self.conf.loader_errors as exc:
                if reads.lowest is None or not fence.retry_on_primary(self.conf.fence, exc):
                    raise  # it read no replica, or the error is the query's own
                failed = True  # not kept: no reference cycle through this frame (fetch_slow)
        if failed:
            # A replica's error (a query cancelled by a recovery conflict, a lost connection):
            # the same load from the primary, so no request fails for a replica.
            fence.count_fallback("error")
            with fence.primary_reads():
                return self.run_loader(loader, stats)
        loaded.read_at = reads.lowest
        return loaded

    def fenced(self, fill_keys: list, fill_args: list, entry: Entry, read_at: int) -> str:
        """Add the fence to a fill_call (keys, args), in place, of a load that read replicas up to
        `read_at` (caching/fence.py): fill.lua then also compares the tags' write positions.
        Returns the token fill.lua claims an absent floor with (seed_floor)."""
        ns = self.engine.namespace
        token = os.urandom(8).hex()
        fill_keys += [keys.tag_position_key(ns, t) for t in entry.tags]
        fill_keys += [keys.write_position_key(ns), keys.write_floor_key(ns), keys.write_log_key(ns)]
        fill_args += [read_at, token, fence.FLOOR_CLAIM_MS, self.conf.tag_invalidation_ttl]
        return token

    def seed_floor(self, token: str) -> None:
        """fill.lua found the fence's floor absent and claimed it with `token`: seed it with the
        primary's write position read now, after the claim (>= the position of every write
        whose tag marks Redis lost with the floor). The primary did not say, or Redis is gone:
        nothing (the claim expires and a later fill claims it again)."""
        position = self.conf.fence.write_position()
        if position is None or position >= fence.UNKNOWN_POSITION:
            return
        try:
            engine = self.engine
            if int(engine.l2.script("seed_floor", [keys.write_floor_key(engine.namespace)], [token, position])):
                logger.warning("fence floor was absent (Redis lost its keys): seeded at %d", position)
        except L2Unavailable:
            pass
