"""Invalidating the app tiers now: L2 (invalidate.lua) and every process's L1 (its broadcast),
for this process's fetch face. The write side's API - now, on commit, one accumulator per
transaction - is caching/invalidation.py; this is what it runs.

`AppTierInvalidator.invalidate(tags)`: one invalidate.lua (O(tags x buckets + deleted values),
large buckets drained in chunks), this process's L1 at once, then a wait for every subscriber
that received the broadcast to acknowledge it (BROADCAST_WAIT at most). Redis unreachable: the
tags are queued (`pending_tags`) and replayed on the fetch's next answer from Redis.
`ainvalidate(tags)`: the same on redis.asyncio (caching/aio.py), for ainvalidate_tags(). The
logic is written once (`_steps`: a generator that yields its Redis calls and is sent their
replies); each face only makes the calls, so the halves cannot drift.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from caching import aio, fence, keys, metrics
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)

PENDING_MAX = 10_000  # tags queued for replay at most
INVALIDATE_CHUNK = 1000  # members of one tag bucket deleted per Redis call (bounded script time)
# The acknowledgement wait polls the writer's ack list (LPOP with a count) every 0.5, 1, 2, 4, 5,
# 5 ... ms: a BLPOP's timeout is only as fine as Redis's timer (1/hz: 100 ms at the default hz 10),
# which made a 50 ms BROADCAST_WAIT last 80-100 ms whenever an L1 did not answer.
ACK_POLL_FIRST = 0.0005
ACK_POLL_MAX = 0.005


def _next_call(steps, reply, failure: L2Unavailable | None):
    """The next Redis call of `steps` (AppTierInvalidator._steps), sent the last call's `reply`
    or thrown its `failure`; None when the steps are done."""
    try:
        return steps.send(reply) if failure is None else steps.throw(failure)
    except StopIteration:
        return None


@dataclass(slots=True)
class Invalidation:
    """One run of invalidate.lua, planned: its tags, keys and arguments, the highest sequence
    the subscriber had received before it (AppTierInvalidator._applied) and the commit time."""

    tags: list
    keys: list
    args: list
    received_before: int
    committed_at: float | None


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
            self._local_only(tags)
            return
        plan = self._plan(tags, committed_at, replay)
        steps = self._steps(plan, strict)
        call = _next_call(steps, None, None)
        while call is not None:  # the steps' Redis calls, made here
            try:
                if call[0] == "script":  # past an open breaker (L2.script_for_write)
                    call = _next_call(steps, self.l2.script_for_write(*call[1:]), None)
                elif call[0] == "lpop":  # ("lpop", key, count)
                    call = _next_call(steps, self.l2.call(self.l2.client.lpop, call[1], call[2]), None)
                else:  # ("sleep", seconds)
                    time.sleep(call[1])
                    call = _next_call(steps, None, None)
            except L2Unavailable as exc:
                call = _next_call(steps, None, exc)

    async def ainvalidate(self, tags: list[str], *, strict: bool = False, committed_at: float | None = None) -> None:
        """invalidate() on redis.asyncio (caching/aio.py): the same steps (script, broadcast,
        acknowledgement wait), their Redis calls awaited. A REPLICA_FENCE's write position (a
        database query) is read in a thread; this process's L1 is updated in the caller's task."""
        if not self.l2.enabled:
            self._local_only(tags)
            return
        if self.conf.fence is None:
            plan = self._plan(tags, committed_at, False)
        else:
            plan = await sync_to_async(self._plan, thread_sensitive=True)(tags, committed_at, False)
        half = aio.l2_for(self.l2)
        steps = self._steps(plan, strict)
        call = _next_call(steps, None, None)
        while call is not None:
            try:
                if call[0] == "script":  # past an open breaker (L2.script_for_write)
                    call = _next_call(steps, await half.script_for_write(*call[1:]), None)
                elif call[0] == "lpop":
                    call = _next_call(steps, await half.call(half.client.lpop, call[1], call[2]), None)
                else:
                    await asyncio.sleep(call[1])
                    call = _next_call(steps, None, None)
            except L2Unavailable as exc:
                call = _next_call(steps, None, exc)

    def _steps(self, plan: Invalidation, strict: bool):
        """An invalidation's logic, once for both faces (sans-I/O): a generator that yields each
        Redis call - ("script", name, keys, args) or ("lpop", key, count) - and is sent its
        reply, or thrown its L2Unavailable, and its pauses ("sleep", seconds); invalidate() and
        ainvalidate() make them.
        invalidate.lua, its large buckets drained in chunks, our L1 at once, then the wait for
        every subscriber that received the broadcast to acknowledge it (each pushes to
        keys.ack_key, which the writer polls: ACK_POLL_FIRST doubling to ACK_POLL_MAX), or
        BROADCAST_WAIT: then a process may still serve the old value from L1 for the time its
        subscriber lags, and it is counted."""
        try:
            seq, _deleted, receivers, aside = yield ("script", "invalidate", plan.keys, plan.args)
            for name in aside:  # large buckets: delete their values in bounded chunks
                while int((yield ("script", "drain_set", [name], [INVALIDATE_CHUNK // 2]))):
                    pass
        except L2Unavailable as exc:
            self._unreached(plan.tags, exc, strict)
            return
        seq, receivers = int(seq), int(receivers)
        self._applied(plan, seq)
        wait = self.conf.broadcast_wait
        if receivers <= 0 or wait <= 0:
            return
        key = keys.ack_key(self.namespace, seq)
        deadline = time.monotonic() + wait
        acked, pause = 0, ACK_POLL_FIRST
        try:
            while True:
                acked += len((yield ("lpop", key, receivers - acked)) or ())
                left = deadline - time.monotonic()
                if acked >= receivers or left <= 0:
                    break
                yield ("sleep", min(pause, left))
                pause = min(pause * 2, ACK_POLL_MAX)
        except L2Unavailable:
            pass
        if acked < receivers:
            metrics.count_invalidation("ack_timeout")
            logger.warning("invalidation %d: %d of %d L1s acknowledged within %.0f ms",
                           seq, acked, receivers, wait * 1000)

    def _local_only(self, tags: list[str]) -> None:
        if self.l1 is not None:
            self.l1.invalidate(None, tags)

    def _plan(self, tags: list[str], committed_at: float | None, replay: bool) -> Invalidation:
        """invalidate.lua's keys and arguments for `tags` (with a fence: the write position read
        now, a database query)."""
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
        return Invalidation(
            tags=tags,
            keys=[self.engine.sequence_key, *tag_keys, *bucket_keys],
            args=[len(tags), conf.tag_invalidation_ttl, self.engine.channel,
                  "\n".join(tags), INVALIDATE_CHUNK, keys.invalidated_set_prefix(ns),
                  f"@{int(committed_at * 1000)}" if committed_at else "", position,
                  log_step, fence.log_length(conf.tag_invalidation_ttl), raise_floor],
            received_before=sub.received_high if sub is not None else 0,  # published before our script ran
            committed_at=committed_at,
        )

    def _unreached(self, tags: list[str], exc: L2Unavailable, strict: bool) -> None:
        """Redis could not run the invalidation: our L1 cleaned now, the tags queued for replay
        (or, `strict`, the error raised)."""
        if self.l1 is not None:
            self.l1.invalidate(None, tags)
        if strict:
            raise exc
        # L2 keeps its entries until Redis is back: remember the tags and replay them on
        # the next successful Redis call. Our own L1 is cleaned now.
        if len(self.pending_tags) < PENDING_MAX:
            self.pending_tags.update(tags)
        else:
            logger.error("pending invalidation backlog full: L2 may serve stale data until TTL")
        logger.error("invalidation of %d tags could not reach Redis (%s): queued for replay", len(tags), exc)
        metrics.count_invalidation("failed", len(tags))

    def _applied(self, plan: Invalidation, seq: int) -> None:
        """Redis ran the invalidation as sequence `seq`: counted, and our L1 updated at once."""
        metrics.count_invalidation("tag", len(plan.tags))
        if plan.committed_at:
            metrics.INVALIDATION_LAG.labels("l2").observe(max(0.0, time.time() - plan.committed_at))
        self.face.seen_seq = max(self.face.seen_seq, seq)
        if self.l1 is not None:
            self.l1.invalidate(seq, plan.tags)  # ours now; the broadcast echo is then a no-op
        sub = self.engine.subscriber
        if sub is not None:
            sub.wrote(seq, plan.received_before)  # a number already received: Redis went back in time

    def replay_pending(self) -> None:
        """Invalidate now what was queued while Redis was unreachable (the fetch's first answer
        from Redis calls it)."""
        tags, self.pending_tags = sorted(self.pending_tags), set()
        if tags:
            logger.warning("replaying %d invalidations queued while Redis was unreachable", len(tags))
            self.invalidate(tags, replay=True)
