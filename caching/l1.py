"""L1: the per-process tier.

An LRU of entries on a C `OrderedDict` (least recently used first), each entry with its own
expiry, bounded by bytes and by entry count (checked on insert), behind one lock. Next to it:

- a tag index (tag -> keys) so a broadcast invalidation removes exactly the tagged entries,
  O(tagged entries), and is kept in step on eviction and expiry;
- the latest invalidation sequence seen per tag, so a fill that started before an invalidation
  that already reached this process is refused (`put` returns Put.REFUSED) - the L1 half of
  the stale-set protection (the Redis half is lua/fill.lua);
- an epoch, bumped by `clear()` (lost subscription): fills that started before are refused too;
- a trust deadline (`trusted_until`, monotonic), moved forward by the subscriber each time Redis
  proves this process has applied every invalidation published up to a moment (a PING answered
  on the subscribed connection, caching/broadcast.py): that moment + L1_TRUST_SECONDS. Past it
  the process cannot hear invalidations: the first lookup (or fill) that sees it empties L1 once
  (`lapses`, <namespace>_cache_invalidations_total{kind="l1_distrusted"}), and until trust is back
  L1 keeps only what it loads meanwhile, each copy for L1_TRUST_SECONDS from the start of its
  load. Trust back: L1 is emptied again and long copies resume. The hit path's cost is one
  clock read and a compare.

Out of the garbage collector's sight (issue 29). A full collection holds the GIL while it
scans every tracked object of the process, and an L1 of 20,000 entries on cachetools' TLRU
was 100,000 of them (the entry, its heap item, the value, two tag-index sets): 30-40 ms per
full collection, the Zipf p99. Here nothing an entry adds stays tracked once collections
have looked at it: an entry is an exact tuple (`entry()`; fields VALUE ... RAW) of numbers,
strings, bytes and tuples of those, which CPython untracks one level of nesting per
collection (the innermost at the first young collection; the value and the entry, once in the
oldest generation, over the next two or three full ones: until then a full collection scans
about two objects per recent entry); the
tag index maps a tag to a plain dict {key: None} (never tracked); the per-tag sequences are
(seq, deadline) tuples; the LRU and the index are one tracked object each. The value is the
caller's: a response (caching.http.response_entry, an exact tuple too) or a TieredCache raw
value costs the collector nothing, an arbitrary object what it costs anyway. The metrics of an
entry are named by its key prefix (a string), not held.

Expiry is checked on lookup (an expired entry is a miss and goes), and each insert drops up to
two expired entries from the least recently used end; what expired unread otherwise waits for
the LRU bound.

Exact-key invalidation (TieredCache, caching/backends/) is tag invalidation: each of its entries
carries its own key as its only tag.

Byte accounting is an estimate: the pickled size of the value plus a fixed per-entry and per-tag
overhead (ENTRY_OVERHEAD, TAG_OVERHEAD: measured with tracemalloc, bench/l1_memory.py). Values
are shared, not copied: callers must treat them as immutable.
"""

from __future__ import annotations

import asyncio
import enum
import math
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

ENTRY_OVERHEAD = 320  # the entry tuple, its LRU and dict slots, the key string (measured, rounded up)
TAG_OVERHEAD = 120  # one tag-index slot
TAG_SEQ_MAX = 100_000

HIT_L1, HIT_L2, MISS, STALE = "HIT-L1", "HIT-L2", "MISS", "STALE"

# The fields of an entry (an exact tuple: see the module docstring).
VALUE, FILLED_AT, TAGS, NBYTES, EXPIRES, PREFIX, RAW = range(7)


def entry(value, filled_at: float, tags: tuple, nbytes: int, expires: float, prefix: str, raw=None) -> tuple:
    """An L1 entry: `value`, when it was filled (epoch s), its tags, its estimated size, its
    monotonic expiry, the key prefix its metrics count under, and (TieredCache) the stored
    bytes."""
    return (value, filled_at, tags, nbytes, expires, prefix, raw)


class Put(enum.Enum):
    """What L1.put() did."""

    STORED = "stored"
    TOO_BIG = "too_big"  # larger than L1_MAX_ITEM_BYTES: not kept, nothing wrong with it
    REFUSED = "refused"  # overtaken by an invalidation or a clear: the value may be superseded
    LAPSED = "lapsed"  # loaded while L1 is not trusted, and older than L1_TRUST_SECONDS already


class FillGuard(NamedTuple):
    """What a fill must not have been overtaken by: the invalidation sequence it started from
    (L1's latest seen, or Redis's at lease time) and L1's epoch (bumped by every clear); and
    when it started (monotonic: a copy loaded while L1 is not trusted lives L1_TRUST_SECONDS
    from then; 0: unknown, such a copy is not kept)."""

    seq: int
    epoch: int
    started: float = 0.0


class Fetched:
    """What fetch() returns: the value, which tier served it, when it was filled (epoch s), and
    whether the tiers know it to be superseded (a fill refused because a tag of it was
    invalidated while it loaded, or overtaken by an invalidation on its way into L1). A
    superseded value may answer the request that loaded it, but nothing downstream (a shared
    cache, the edge) may keep it. `shared` is False for a value the shared tier did not admit
    (the first sight of a "second_hit" key: this process's L1 only): the edge should not keep
    it either, so a URL nobody asks twice leaves no object anywhere but one L1."""

    __slots__ = ("value", "source", "filled_at", "superseded", "shared")

    def __init__(self, value, source: str, filled_at: float, superseded: bool = False, shared: bool = True):
        self.value = value
        self.source = source
        self.filled_at = filled_at
        self.superseded = superseded
        self.shared = shared

    def __repr__(self):
        return f"Fetched(source={self.source!r}, filled_at={self.filled_at:.3f}, value={self.value!r:.60})"


APPLY_WAIT = 0.01  # seconds an L1 hit waits for the subscriber to apply a pending message
APPLY_POLL = 0.0001  # seconds between its looks


async def _acquired(lock) -> None:
    """Acquire a threading lock from a coroutine without blocking its event loop: the holder is
    another thread (its critical sections are microseconds, unless it is preempted inside one:
    then up to a GIL switch interval), so poll, letting the loop run between tries."""
    while not lock.acquire(False):
        await asyncio.sleep(0)


def _nothing_unapplied() -> bool:
    return False


def _no_hook() -> None:
    pass


class L1:
    def __init__(self, *, max_bytes: int, max_entries: int, max_item_bytes: int, tag_seq_ttl: float,
                 trust_seconds: float = 1.0):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.max_item_bytes = min(max_item_bytes, max_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._index: dict[str, dict[str, None]] = {}  # tag -> {key: None} (a dict: never tracked)
        self._tag_seq: OrderedDict[str, tuple[int, float]] = OrderedDict()  # tag -> (seq, deadline), oldest first
        self._tag_seq_ttl = tag_seq_ttl
        self.seen_seq = 0
        self.epoch = 0
        self.clears = 0
        self.removed_by_tag = 0
        self.refused_fills = 0
        self.held_back = 0  # hits not served: an invalidation had arrived, not yet applied
        self.unapplied = _nothing_unapplied  # the subscriber's unapplied() (caching/broadcast.py)
        # Trusted for ever until a subscriber takes charge (revoke_trust): without one (L2
        # disabled) this process's L1 is all there is.
        self.trust_seconds = trust_seconds
        self.trusted_until = math.inf
        self.distrusted = False  # emptied since trust lapsed: holds only short copies
        self.lapses = 0
        self.on_lapse = _no_hook  # called (outside the lock) each time trust lapses (a metric)

    # --- hot path ---------------------------------------------------------------------------

    def get(self, key: str, _now=time.monotonic) -> tuple | None:
        """The live entry of `key` (a tuple: entry[VALUE], entry[FILLED_AT], ...) or None.
        Cost: a clock read and two compares (the trust deadline, the entry's expiry), one lock,
        a dict lookup and the LRU move, and on a hit one poll of the subscriber's socket
        (~1 + 2 us). Past the trust deadline the first caller empties L1 (lapse()); what is
        found afterwards was loaded since, and expires L1_TRUST_SECONDS after its load began.
        While a message has reached this process but is not applied yet (usually a PING's
        answer, or an invalidation waiting for the GIL), the caller sleeps in APPLY_POLL steps
        (up to APPLY_WAIT) for the subscriber to apply it and reads again; still pending: None,
        so the caller reads L2, which the writer invalidated before it published. A coroutine
        calls aget() instead: the same answer, awaited."""
        now = _now()  # (a local name: the cheapest call)
        if now > self.trusted_until and not self.distrusted:
            self.lapse()
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[EXPIRES] <= now:
                self._remove(key, found)
                return None
            self._entries.move_to_end(key)
        if not self.unapplied():
            return found
        deadline = time.monotonic() + APPLY_WAIT
        while time.monotonic() < deadline:
            time.sleep(APPLY_POLL)  # releases the GIL: the subscriber thread applies what it has
            if not self.unapplied():
                with self._lock:
                    return self._live(key)
        self.held_back += 1
        return None

    async def aget(self, key: str) -> tuple | None:
        """get() for a coroutine: the same answer, and the event loop is never blocked. The
        lock is taken without waiting (held by another thread - a fill, an invalidation, a
        thread preempted inside one -: the task polls it with asyncio.sleep(0)), a pending
        message is waited for with asyncio.sleep(APPLY_POLL) (the loop's other tasks run
        meanwhile), and a lapse of trust empties L1 the same way. Cost on a hit: get()'s, and
        nothing awaited (a coroutine that completes on its first step)."""
        now = time.monotonic()
        if now > self.trusted_until and not self.distrusted:
            await self._alapse()
        lock = self._lock
        if not lock.acquire(False):
            await _acquired(lock)
        try:
            found = self._live(key, now, move=True)
        finally:
            lock.release()
        if found is None or not self.unapplied():
            return found
        deadline = time.monotonic() + APPLY_WAIT
        while time.monotonic() < deadline:
            await asyncio.sleep(APPLY_POLL)  # the loop's select releases the GIL: the subscriber applies
            if not self.unapplied():
                if not lock.acquire(False):
                    await _acquired(lock)
                try:
                    return self._live(key)
                finally:
                    lock.release()
        self.held_back += 1
        return None

    def _live(self, key: str, now: float | None = None, *, move: bool = False) -> tuple | None:
        """Under the lock: `key`'s entry if it has not expired (an expired one goes); `move`:
        marked most recently used."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found[EXPIRES] <= (time.monotonic() if now is None else now):
            self._remove(key, found)
            return None
        if move:
            self._entries.move_to_end(key)
        return found

    # --- fills --------------------------------------------------------------------------------

    def since(self) -> FillGuard:
        """Mark taken before reading L2: pass it to put() to refuse fills overtaken by an
        invalidation (or a clear) that arrived meanwhile."""
        return FillGuard(self.seen_seq, self.epoch, time.monotonic())

    def put(self, key: str, new: tuple, guard: FillGuard) -> Put:
        """Store the entry `new` (entry()) unless a tag of it was invalidated after `guard.seq`
        or L1 was cleared since `guard.epoch`. Returns Put.STORED, or why not: Put.REFUSED when
        the value may be superseded (an invalidation or a clear overtook it: nothing downstream
        may keep it either), Put.TOO_BIG, Put.LAPSED."""
        nbytes = new[NBYTES]
        if nbytes > self.max_item_bytes:
            return Put.TOO_BIG
        now = time.monotonic()
        if now > self.trusted_until:
            if not self.distrusted:
                self.lapse()  # bumps the epoch: a fill that started while trusted is refused below
            # Nothing may remove it: it lives L1_TRUST_SECONDS from the start of its load.
            limit = guard.started + self.trust_seconds
            if limit <= now:
                return Put.LAPSED
            if new[EXPIRES] > limit:
                new = (*new[:EXPIRES], limit, *new[EXPIRES + 1:])
        since_seq = guard.seq
        tags = new[TAGS]
        with self._lock:
            if guard.epoch != self.epoch:
                self.refused_fills += 1
                return Put.REFUSED
            for tag in tags:
                if self._seq_of(tag, now) > since_seq:
                    self.refused_fills += 1
                    return Put.REFUSED
            entries = self._entries
            old = entries.pop(key, None)
            if old is not None:
                self._bytes -= old[NBYTES]
                self._unindex(key, old)
            entries[key] = new
            self._bytes += nbytes
            index = self._index
            for tag in tags:
                keys = index.get(tag)
                if keys is None:
                    index[tag] = {key: None}
                else:
                    keys[key] = None
            self._evict(now)
            return Put.STORED

    def _evict(self, now: float) -> None:
        """Under the lock, after an insert: the least recently used entries go while L1 is over
        either bound, and up to two expired ones from that end (expiry is otherwise lazy)."""
        entries = self._entries
        while len(entries) > self.max_entries or self._bytes > self.max_bytes:
            key, gone = entries.popitem(last=False)
            self._bytes -= gone[NBYTES]
            self._unindex(key, gone)
        for _ in range(2):
            key = next(iter(entries), None)
            if key is None or entries[key][EXPIRES] > now:
                break
            self._remove(key, entries[key])

    def _remove(self, key: str, gone: tuple) -> None:
        del self._entries[key]
        self._bytes -= gone[NBYTES]
        self._unindex(key, gone)

    def _seq_of(self, tag: str, now: float) -> int:
        """The sequence of `tag`'s latest invalidation seen here, 0 when none within TAG_SEQ_TTL."""
        recorded = self._tag_seq.get(tag)
        return recorded[0] if recorded is not None and recorded[1] > now else 0

    def overtaken(self, tags, seq: int) -> bool:
        """Was one of `tags` invalidated after sequence `seq`, as far as this process knows?
        (A value loaded at `seq` and served without entering L1, e.g. stale, is superseded then.)"""
        now = time.monotonic()
        with self._lock:
            return any(self._seq_of(tag, now) > seq for tag in tags)

    def _unindex(self, key: str, gone: tuple) -> None:
        index = self._index
        for tag in gone[TAGS]:
            keys = index.get(tag)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del index[tag]

    # --- invalidation -------------------------------------------------------------------------

    def invalidate(self, seq: int | None, tags, *, echo: bool = False) -> int:
        """Drop every entry carrying one of `tags` (a tag, or an exact key: TieredCache's entries
        carry their own key as their tag) and remember the sequence number of this invalidation,
        so fills that started before it are refused. `seq` None: local only (Redis unreachable).

        `echo`: the broadcast of an invalidation (caching/broadcast.py). A tag that already
        recorded this (or a later) sequence is then left alone: the writer applied its own
        invalidation first, and its echo must not drop what was filled after it. The writer's
        own call (echo False) always drops. Returns how many entries went."""
        removed = 0
        now = time.monotonic()
        with self._lock:
            tag_seq = self._tag_seq
            if seq is not None and seq > self.seen_seq:
                self.seen_seq = seq
            entries = self._entries
            index = self._index
            for tag in tags:
                if seq is not None:
                    if self._seq_of(tag, now) >= seq:
                        if echo:
                            continue
                    else:
                        tag_seq.pop(tag, None)
                        tag_seq[tag] = (seq, now + self._tag_seq_ttl)
                keys = index.get(tag)
                if not keys:
                    continue
                for key in list(keys):
                    gone = entries.get(key)
                    if gone is not None:
                        self._remove(key, gone)
                        removed += 1
            if seq is not None:
                self._prune_tag_seq(now)
            self.removed_by_tag += removed
        return removed

    def _prune_tag_seq(self, now: float) -> None:
        """Forget sequences older than TAG_SEQ_TTL (oldest first), and beyond TAG_SEQ_MAX."""
        tag_seq = self._tag_seq
        while tag_seq:
            tag = next(iter(tag_seq))
            if tag_seq[tag][1] > now and len(tag_seq) <= TAG_SEQ_MAX:
                break
            del tag_seq[tag]

    def clear(self) -> None:
        """Drop everything and refuse fills that started before (lost subscription, a clear()
        somewhere, the sequence going backwards). The per-tag sequences go too: after a Redis
        restart or failover the sequence may restart lower, and later invalidations must apply."""
        with self._lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._index.clear()
        self._tag_seq.clear()
        self.seen_seq = 0
        self.epoch += 1
        self.clears += 1

    # --- trust (the subscriber hears Redis) ---------------------------------------------------

    def trust_until(self, heard_at: float) -> None:
        """Every invalidation published up to `heard_at` (monotonic) has been applied (or L1
        was emptied after it): L1 may answer until `heard_at` + L1_TRUST_SECONDS. Coming back
        from a lapse, L1 is emptied first: what it loaded meanwhile was never checked.
        Usually no lock (one attribute store, five times a second): a thread filling L1 in a
        tight loop must not hold the subscriber off and make trust lapse. A lapse racing it
        only empties L1, which is safe."""
        deadline = heard_at + self.trust_seconds
        if not self.distrusted:
            if deadline > self.trusted_until:
                self.trusted_until = deadline
            return
        with self._lock:
            if self.distrusted:
                self._clear_locked()
                self.distrusted = False
            self.trusted_until = max(self.trusted_until, deadline)

    def revoke_trust(self, *, counted: bool = True) -> None:
        """The subscriber lost its connection (`counted`), or has not subscribed yet: L1 is
        emptied now, unless it already lapsed, and holds only short copies until trust_until()."""
        with self._lock:
            self.trusted_until = -math.inf
        self.lapse(counted=counted)

    def lapse(self, *, counted: bool = True) -> None:
        """Trust has run out (nothing heard from Redis for L1_TRUST_SECONDS): empty L1 once and
        refuse the fills that started before; later fills are kept L1_TRUST_SECONDS each."""
        with self._lock:
            counted = self._lapse_locked(counted)
        if counted:
            self.on_lapse()

    async def _alapse(self) -> None:
        """lapse() from a coroutine (aget): the lock taken without blocking the loop."""
        if not self._lock.acquire(False):
            await _acquired(self._lock)
        try:
            counted = self._lapse_locked(True)
        finally:
            self._lock.release()
        if counted:
            self.on_lapse()

    def _lapse_locked(self, counted: bool) -> bool:
        """lapse()'s work under the lock; whether on_lapse is to be called (outside it)."""
        if self.distrusted or time.monotonic() <= self.trusted_until:
            return False  # another thread did it, or trust came back meanwhile
        self._clear_locked()
        self.distrusted = True
        if counted:
            self.lapses += 1
        return counted

    @property
    def trusted(self) -> bool:
        return time.monotonic() <= self.trusted_until

    # --- introspection ------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[str]:
        """The keys held now, least recently used first (expired ones not yet dropped included)."""
        with self._lock:
            return list(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_entries": self.max_entries,
                "max_bytes": self.max_bytes,
                "tags_indexed": len(self._index),
                "clears": self.clears,
                "removed_by_tag": self.removed_by_tag,
                "refused_fills": self.refused_fills,
                "held_back": self.held_back,
                "seen_sequence": self.seen_seq,
                "trusted": time.monotonic() <= self.trusted_until,
                "trust_lapses": self.lapses,
            }
