"""Invalidating the app tiers now: L2 (invalidate.lua) and every process's L1 (its broadcast),
for this process's fetch face. The write side's API - now, on commit, one accumulator per
transaction - is caching/invalidation.py; this is what it runs.

`AppTierInvalidator.invalidate(tags)`: one invalidate.lua (O(tags x buckets + deleted values),
large buckets drained in chunks), this process's L1 at once, then a wait for every subscriber
that received the broadcast to acknowledge it (BROADCAST_WAIT at most). Redis unreachable: the
tags are queued (`pending_tags`) and replayed on the fetch's next answer from Redis.
"""

from __future__ import annotations

import logging
import time

from caching import fence, keys, metrics
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)

PENDING_MAX = 10_000  # tags queued for replay at most
INVALIDATE_CHUNK = 1000  # members of one tag bucket deleted per Redis call (bounded script time)


class AppTierInvalidator:
    """The invalidations of one fetch face (caching/fetcher.py): its engine's L2 and L1s, and
    the tags still to replay to Redis."""

    def __init__(self, face):
        self.face = face  # its seen_seq (the mark of its fills without L1) is advanced here
        self.engine = face.engine
        self.conf = face.conf
        self.l1 = face.l1
        self.l2 = face.l2
        self.namespace = face.namespace
        self.pending_tags: set[str] = set()

    def invalidate(self, tags: list[str], *, strict: bool = False, committed_at: float | None = None,
                   replay: bool = False) -> None:
        """L2 (invalidate.lua) and every process's L1 (its broadcast), ours applied at once.
        Redis unreachable: queued for replay, or with `strict` L2Unavailable is raised.
        `replay`: invalidations queued while Redis was unreachable; with a fence, the floor is
        raised to the position read now (their writes committed before it).
        `committed_at` (epoch s): when the write committed; the broadcast carries it so every
        process observes its commit -> L1 lag (<namespace>_cache_invalidation_lag_seconds)."""
        if not self.l2.enabled:  # L2_ENABLED False: this process's L1 is all there is
            if self.l1 is not None:
                self.l1.invalidate(None, tags)
            return
        conf = self.conf
        ns = self.namespace
        width = conf.tag_bucket_seconds
        now = time.time()
        first, last = int(now // width), int((now + conf.max_hard_ttl) // width) + 1
        tag_keys = [keys.tag_invalidated_key(ns, t) for t in tags]
        position = log_step = raise_floor = ""
        if conf.fence is not None:
            # After the write committed: a position >= the write's, recorded with each tag's mark
            # so fills read from a replica below it are not stored (caching/fence.py).
            written = conf.fence.write_position()
            if written is None:  # the database did not say: no replica read vouches for these tags
                written = fence.UNKNOWN_POSITION
            else:  # an unknown one is not logged: it would become a floor no replica passes
                log_step = fence.log_step(conf.tag_invalidation_ttl)
            fence.writes.saw(written)
            position = str(written)
            raise_floor = "1" if replay and log_step else ""  # never to an unknown position
            tag_keys += [keys.tag_position_key(ns, t) for t in tags]
            tag_keys += [keys.write_position_key(ns), keys.write_floor_key(ns), keys.write_log_key(ns)]
        bucket_keys = [keys.tag_bucket_key(ns, t, b) for t in tags for b in range(first, last + 1)]
        sub = self.engine.subscriber
        received_before = sub.received_high if sub is not None else 0  # published before our script ran
        try:
            seq, _deleted, receivers, aside = self.l2.script(
                "invalidate",
                [self.engine.sequence_key, *tag_keys, *bucket_keys],
                [len(tags), conf.tag_invalidation_ttl, self.engine.channel,
                 "\n".join(tags), INVALIDATE_CHUNK, keys.invalidated_set_prefix(ns),
                 f"@{int(committed_at * 1000)}" if committed_at else "", position,
                 log_step, fence.log_length(conf.tag_invalidation_ttl), raise_floor],
            )
            for name in aside:  # large buckets: delete their values in bounded chunks
                while int(self.l2.script("drain_set", [name], [INVALIDATE_CHUNK // 2])):
                    pass
        except L2Unavailable as exc:
            if self.l1 is not None:
                self.l1.invalidate(None, tags)
            if strict:
                raise
            # L2 keeps its entries until Redis is back: remember the tags and replay them on
            # the next successful Redis call. Our own L1 is cleaned now.
            if len(self.pending_tags) < PENDING_MAX:
                self.pending_tags.update(tags)
            else:
                logger.error("pending invalidation backlog full: L2 may serve stale data until TTL")
            logger.error("invalidation of %d tags could not reach Redis (%s): queued for replay", len(tags), exc)
            metrics.count_invalidation("failed", len(tags))
            return
        metrics.count_invalidation("tag", len(tags))
        if committed_at:
            metrics.INVALIDATION_LAG.labels("l2").observe(max(0.0, time.time() - committed_at))
        self.face.seen_seq = max(self.face.seen_seq, int(seq))
        if self.l1 is not None:
            self.l1.invalidate(int(seq), tags)  # ours now; the broadcast echo is then a no-op
        if sub is not None:
            sub.wrote(int(seq), received_before)  # a number already received: Redis went back in time
        self._wait_for_acks(int(seq), int(receivers))

    def _wait_for_acks(self, seq: int, receivers: int) -> None:
        """Return once every subscriber that received invalidation `seq` has applied it to its
        L1 (each pushes to keys.ack_key), or after BROADCAST_WAIT: then a process may still
        serve the old value from L1 for the time its subscriber lags, and it is counted. Cost:
        one BLPOP per receiving process, each answered as soon as that process acknowledges."""
        wait = self.conf.broadcast_wait
        if receivers <= 0 or wait <= 0:
            return
        key = keys.ack_key(self.namespace, seq)
        client = self.l2.client
        deadline = time.monotonic() + wait
        acked = 0
        try:
            while acked < receivers:
                left = deadline - time.monotonic()
                if left <= 0 or self.l2.call(client.blpop, [key], timeout=max(left, 0.001)) is None:
                    break
                acked += 1
        except L2Unavailable:
            pass
        if acked < receivers:
            metrics.count_invalidation("ack_timeout")
            logger.warning("invalidation %d: %d of %d L1s acknowledged within %.0f ms",
                           seq, acked, receivers, wait * 1000)

    def replay_pending(self) -> None:
        """Invalidate now what was queued while Redis was unreachable (the fetch's first answer
        from Redis calls it)."""
        tags, self.pending_tags = sorted(self.pending_tags), set()
        if tags:
            logger.warning("replaying %d invalidations queued while Redis was unreachable", len(tags))
            self.invalidate(tags, replay=True)
