"""Fills fenced by the database's log position (SPEC 5, "Freshness against replicas").

A fill read from a replica that has not replayed the newest invalidation of one of its tags would
put the old version back into every tier. The library compares opaque integers, the project says
what they are (for PostgreSQL: WAL positions, read by a class of the project's own):

- the write position: `TIERED_CACHE["REPLICA_FENCE"]`, an object whose `write_position()`
  returns, after a write committed, a position >= that write's (PostgreSQL:
  pg_current_wal_insert_lsn() on the primary), or None when it cannot tell (UNKNOWN_POSITION is
  then recorded: no replica read passes the fence for those tags until their marks expire).
  `FetchFace.invalidate` records it with each tag's invalidation mark in Redis
  (invalidate.lua: the max per tag, and the max over all tags). Not configured: nothing is asked
  and nothing recorded (no cost without replicas).
- the read position: the project's router calls `note_replica_read(position)` when it sends a
  read to a replica, with a replay position that cannot be newer than the data that read sees
  (read before it). The fetch face runs each loader inside `load_scope()`, which keeps the lowest
  position noted during the load; fill.lua then refuses to store the value anywhere when one of
  its tags has a mark newer than that position (`Filled.BEHIND`).
- `retry_on_primary(exc)` (optional, on the same object): True when a load that read a replica
  and raised `exc` failed because of the replica (a recovery conflict, a lost connection); the
  fetch face then runs it again on the primary. Without it, or False: the error is raised.
- `primary_reads()`: a scope in which the router must send every read to the primary (the
  re-read of a fenced fill, bulk loads, loads while Redis is unreachable). `reads_primary()` is
  what the router asks.

Two keys without expiry keep the fence from depending on the tag marks' lifetime (fill.lua,
invalidate.lua, docs/caching.md): the namespace's floor (absent - Redis lost its keys - means
unknown: fills are refused until a process seeds it with the primary's position of after the
loss, seed_floor.lua), and a short log of write positions by minute, which refuses a replica
further behind than a mark lives.

The process also keeps a short history of the newest write positions it has seen (its own
invalidations and fill.lua's answers), so the project can skip a replica that is far behind
before reading it (`written_before`): an economy (a fresh process knows nothing), not the
guarantee.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from caching import metrics

# Recorded for an invalidation whose write position is unknown: above any real position (and
# exact as a Lua number), so every replica fill of its tags is refused while the mark lives.
UNKNOWN_POSITION = 2**62
# A claim on an absent floor (fill.lua) lives this long (ms) if its process never seeds it.
FLOOR_CLAIM_MS = 10_000


def log_step(mark_ttl: int) -> int:
    """Seconds one entry of the write-position log covers (invalidate.lua): a tenth of a mark's
    lifetime, so the log keeps ~13 entries whatever the lifetime (every replica fill reads it
    whole). A replica less than mark_ttl - step behind is never refused by the log."""
    return max(1, mark_ttl // 10)


def log_length(mark_ttl: int) -> int:
    """Entries the log keeps: those created within a mark's lifetime, and one more before."""
    return mark_ttl // log_step(mark_ttl) + 3


@dataclass(slots=True)
class ReadPositions:
    """What one load read: the lowest replay position of the replicas it read (None: none)."""

    lowest: int | None = None

    def saw(self, position: int) -> None:
        if self.lowest is None or position < self.lowest:
            self.lowest = position


_load: ContextVar[ReadPositions | None] = ContextVar("caching_fence_load", default=None)
_primary: ContextVar[bool] = ContextVar("caching_fence_primary", default=False)


@contextmanager
def load_scope():
    """Collect the read positions of one load (yields its ReadPositions). A load inside another
    one's loader (a nested fetch) passes what it read on to the enclosing load as it ends: the
    outer value was computed from those reads too."""
    reads = ReadPositions()
    parent = _load.get()
    token = _load.set(reads)
    try:
        yield reads
    finally:
        _load.reset(token)
        if parent is not None and reads.lowest is not None:
            parent.saw(reads.lowest)


def note_replica_read(position: int) -> None:
    """Called by the router for a read it sends to a replica whose replay position (read before
    that read) is `position`. Outside a load: nothing."""
    reads = _load.get()
    if reads is not None:
        reads.saw(position)


@contextmanager
def primary_reads():
    """Every read in this scope goes to the primary (the router asks `reads_primary()`)."""
    token = _primary.set(True)
    try:
        yield
    finally:
        _primary.reset(token)


def reads_primary() -> bool:
    return _primary.get()


def retry_on_primary(replica_fence, exc: BaseException) -> bool:
    """Does the project's fence say a load that read a replica and raised `exc` failed because
    of the replica (its optional `retry_on_primary(exc)`; without it: no)?"""
    decide = getattr(replica_fence, "retry_on_primary", None)
    return bool(decide(exc)) if decide is not None else False


def count_fallback(reason: str) -> None:
    """A load (or a request's reads) sent to the primary instead of a replica, by reason:
    fence (a fill refused by the fence: re-read from the primary, or with REPLICA_BEHIND
    "no_store" answered uncached, no primary read), behind (the replica is far behind), unavailable (the
    replica did not answer), error (a load that read a replica failed: run again on the
    primary), no_l2 (Redis unreachable: no fence to check against)."""
    metrics.REPLICA_FALLBACKS.labels(reason).inc()


class WriteHistory:
    """The newest write position this process knew, sampled at most once a second over the last
    `keep` seconds: `as_of(seconds)` is the newest one known that long ago (None: none known)."""

    def __init__(self, keep: float = 300.0):
        self.keep = keep
        self.newest = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def saw(self, position: int, now: float | None = None) -> None:
        if position <= self.newest or position >= UNKNOWN_POSITION:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            self.newest = max(self.newest, position)
            samples = self._samples
            if samples and now - samples[-1][0] < 1.0:
                samples[-1] = (samples[-1][0], self.newest)
            else:
                samples.append((now, self.newest))
            while len(samples) > 1 and now - samples[1][0] > self.keep:
                samples.popleft()

    def as_of(self, seconds: float, now: float | None = None) -> int | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            known = None
            for at, position in self._samples:
                if now - at < seconds:
                    break
                known = position
            return known


writes = WriteHistory()


def written_before(seconds: float) -> int | None:
    """The newest write position this process knew `seconds` ago: a replica whose replay
    position is below it is at least that far behind."""
    return writes.as_of(seconds)
