"""A fetch's L2 read made early: by the WSGI front (caching/front.py), on an L1 miss, before
Django decides whether anything will fetch.

`EarlyRead.start(face, key)` makes the read fetch() would make (the same SET NX GET, which takes
the lease of a cold key). The front then either answers a plain L2 hit from it (`fresh_hit`:
counted and backfilled as fetch() does) or stores it once in the environ (`EarlyRead.store`);
the middleware's `caching.fetch(..., early_read=EarlyRead.stored(environ))` continues from it
instead of reading L1 and L2 again, so a miss still costs 2 Redis round trips, not 3. A read
nothing used (a middleware answered first, a single-flight follower) is given back after
Django's answer (`give_back`: the lease it may hold).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from caching import keys, metrics
from caching.envelope import Envelope, is_lease
from caching.l1 import HIT_L2, Fetched, FillGuard
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)

# The environ key of the read: a WSGI key no HTTP header can set (those are HTTP_*).
ENVIRON_KEY = "caching.early_read"


@dataclass(slots=True)
class EarlyRead:
    """fetch()'s leasing L2 read of `key`, done before the fetch. `raw`: what SET NX GET
    answered (None: the key was absent and the lease is ours). `used`: a fetch continued from
    it or it answered the request (nothing to give back)."""

    face: object  # caching.fetcher.FetchFace: this process's
    key: str
    vkey: str
    lease: str
    lease_ms: int
    raw: bytes | None
    guard: FillGuard  # taken before the read, as fetch_slow takes it
    used: bool = False
    unavailable: bool = False  # L2 did not answer: the fetch loads without it (no second try)
    env: Envelope | None = None  # raw decoded (fresh_hit), with its XFetch draw:
    early_refresh: bool = False  # the fetch does not draw again

    @classmethod
    def start(cls, face, key: str) -> EarlyRead | None:
        """The read of `key`. None while another thread of this process is fetching the key
        (the caller's fetch joins it, reading nothing). L2 unreachable: a read marked
        `unavailable` (the fetch then loads without L2 instead of trying again)."""
        if key in face.inflight:
            return None
        guard = face.fill_guard()
        vkey = keys.value_key(face.namespace, key)
        try:
            lease, lease_ms, raw = face.read_l2(vkey)
        except L2Unavailable:
            return cls(face, key, vkey, "", 0, None, guard, unavailable=True)
        return cls(face, key, vkey, lease, lease_ms, raw, guard)

    def fresh_hit(self, accept: Callable[[object], bool]) -> Fetched | None:
        """The read as fetch() would answer it when that is a plain HIT-L2 of a value `accept`s:
        present, not a lease, before its soft expiry, not picked for an early refresh (XFetch:
        the draw is kept, the fetch does not draw again), no later invalidation of its tags
        known here. Counted (L1 miss, L2 hit), L1 backfilled under the guard taken before the
        read. None otherwise: a fetch continues from it. An entry that does not decode is
        logged and left to the fetch (it fails the same way, answered)."""
        raw = self.raw
        if self.unavailable or raw is None or is_lease(raw):
            return None
        face = self.face
        try:
            env = self.env = Envelope(raw)
        except Exception:  # noqa: BLE001 (Django's path fails the same way, logged and answered)
            logger.exception("WSGI front: L2 entry of %s not readable here", self.key)
            return None
        now = time.time()
        if now >= env.soft_expiry:
            return None
        self.early_refresh = face.xfetch(env, now)
        if self.early_refresh or not accept(env.value):
            return None
        l1 = face.l1
        if l1 is not None and l1.overtaken(env.tags, env.seq):
            return None
        self.used = True
        stats = metrics.stats_for(keys.key_prefix_of(self.key))
        if l1 is not None:
            stats.miss_l1()
        stats.hit_l2()
        superseded = face.fills.put_envelope(self.key, env, stats, self.guard)
        return Fetched(env.value, HIT_L2, env.filled_at, superseded)

    def store(self, environ: dict) -> None:
        """Hand the read to the fetch of the request's key (`stored`)."""
        environ[ENVIRON_KEY] = self

    @staticmethod
    def stored(environ: dict) -> EarlyRead | None:
        return environ.get(ENVIRON_KEY)

    def give_back(self) -> None:
        """A read that neither answered nor reached a fetch: give back the lease it took."""
        if not self.used and self.raw is None and not self.unavailable:
            self.used = True
            try:
                self.face.l2.script("release", [self.vkey], [self.lease])
            except L2Unavailable:
                pass  # the lease expires by itself after LEASE_TTL
