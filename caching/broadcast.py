"""L1 coherence across processes: one pub/sub subscriber thread per engine and process.

Every write script announces on the engine's channel (`keys.channel(namespace, db)`: pub/sub
ignores db indexes) in one grammar, written by caching/lua/common.lua:

    "t<sequence>\\n<item>\\n<item>..."   drop the L1 entries of each item (tags, or exact keys)
    "a<sequence>[@<commit ms>]\\n<item>..." the same, then acknowledge: RPUSH to
                                         `keys.ack_key(namespace, sequence)`, which the writer
                                         waits on (read-your-writes across processes)
    "c<sequence>"                        empty L1

Every process applies each message to its own L1. The subscription runs on a dedicated
connection named `keys.subscriber_client_name(namespace, pid)`.

Trust. Redis answers a PING on the subscribed connection after every message it published
before the PING, so the answer to a PING sent at t proves that every invalidation published up
to t has been applied here: the subscriber then moves L1's trust deadline to t +
L1_TRUST_SECONDS (L1.trust_until; a confirmed subscription does the same from the moment it was
asked, L1 having been emptied since). It PINGs every PING_EVERY; a host that stops hearing Redis
- a partition that drops packets silently keeps the connection open and raises no error -
stops answering from L1 when the deadline passes, whatever this thread is doing (the hit path
compares the deadline itself: caching/l1.py), and reconnects once a PING has gone unanswered for
STUCK_AFTER. A lost connection revokes the trust at once. docs/scaling.md has the bound.

A message that has reached the process but is not applied yet (its bytes unread in the socket,
or read and being applied: `unapplied()`) makes L1 hits fall through to L2, which the write
invalidated before it published. So read-your-writes does not depend on this thread being
scheduled in time: a write that returned after its acknowledgement wait timed out (a starved
process) still cannot be answered from an old L1 entry in a request that began after it.

Whenever the subscription is (re)established - first start, redis-py's silent reconnect, or our
own after an error - the whole L1 is cleared, because invalidations may have been missed
meanwhile; on a connection error it is cleared at once too. Messages arrive in sequence order
(each is published by the script that bumped the sequence), so a sequence lower than the last
one means Redis went back in time (restored from an older snapshot, a lagging replica promoted,
the sequence key lost): L1 is cleared then too. A message that does not parse is counted and
ignored: our scripts never publish one, so no invalidation is lost by skipping it.

Redis back in time. Clearing L1 is not enough: the restored L2 holds values whose invalidations
came after the snapshot, and nothing would re-apply them. So each subscriber keeps the highest
sequence its process has ever seen (`high_water`, kept across reconnects) and runs rewind.lua
when it (re)subscribes, when it reads a sequence below it or one it has already received (writes
after the rewind may have brought the sequence back up to the mark), and every REWIND_CHECK_EVERY (a Redis
rewound in place, `DEBUG RELOAD` or a failover behind a proxy, drops no connection and may publish
nothing): a sequence in Redis below the mark means Redis lost writes. The first process to see it moves the sequence past its mark and sets
the namespace's rewind mark (keys.rewind_key); its engine re-applies the recent invalidations
(caching.engine.on_rewound: the CDN outbox's, cdn/purges.py) and then deletes the mark. Every
subscriber that finds the mark set stays REWOUND meanwhile: L1 empty and off, not counted as
subscribed, the mark polled every REWIND_POLL. Idempotent: a later check finds the sequence
moved forward, a second reaction (a process whose mark was higher) re-applies the same rows once
more. docs/scaling.md has the bound and the limits. Nothing ends
the thread but stop(): any other error clears L1 and resubscribes. The thread is a daemon and is
not inherited by forked children (their engine starts its own).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import NamedTuple

import redis

from caching import metrics
from caching.l2 import REDIS_ERRORS, L2Unavailable

logger = logging.getLogger(__name__)

INVALIDATE, ACKNOWLEDGED, CLEAR = "t", "a", "c"
ACK_TTL_MS = 10_000
PING_EVERY = 0.2  # seconds between PINGs on the subscribed connection (each answer renews L1's trust)
STUCK_AFTER = 1.0  # a PING unanswered this long: the connection delivers nothing, reconnect
PING_MESSAGE = "tiered-cache-l1-ping"

# The subscriber's state (Subscriber.state):
OK = "ok"  # subscribed and answering: L1 is coherent
CONNECTING = "connecting"  # (re)subscribing: L1 stays empty until the confirmation arrives
DOWN = "down"  # Redis unreachable: L1 fills from the loader (fail-open), nobody can invalidate L2
STUCK = "stuck"  # connected but deaf (a PING went unanswered): L1 cleared and off, reconnecting
REWOUND = "rewound"  # subscribed, but Redis went back in time: L1 off until the invalidations it lost are re-applied

# rewind.lua's answers
REWIND_NONE, REWIND_REACT, REWIND_WAIT = 0, 1, 2
REWIND_POLL = 0.05  # seconds between checks of the rewind mark while REWOUND
REWIND_CHECK_EVERY = 1.0  # seconds between checks while OK (a rewind in place drops no connection)
REWIND_MARK_TTL_MS = 60_000  # the reacting process refreshes it while it retries; it dies: the mark expires


class _Stuck(Exception):
    pass


class Message(NamedTuple):
    kind: str  # INVALIDATE, ACKNOWLEDGED or CLEAR
    seq: int
    items: tuple
    committed_at: float | None = None  # epoch s of the write's commit, when the writer sent it


def parse(data: bytes) -> Message:
    """Decode one channel message. ValueError (UnicodeDecodeError included) if it is not ours."""
    text = data.decode() if isinstance(data, bytes) else str(data)
    head, _, rest = text.partition("\n")
    kind, digits = head[:1], head[1:]
    digits, at, commit_ms = digits.partition("@")
    if (kind not in (INVALIDATE, ACKNOWLEDGED, CLEAR) or not digits.isdigit() or not digits.isascii()
            or (at and not (commit_ms.isdigit() and commit_ms.isascii()))):
        raise ValueError(f"not an invalidation message: {text[:80]!r}")
    items = tuple(rest.split("\n")) if rest and kind != CLEAR else ()
    return Message(kind, int(digits), items, int(commit_ms) / 1000.0 if at else None)


class Subscriber:
    def __init__(self, l1, *, l2, channel: str, client_name: str, ack_key,
                 sequence_key: str = "", rewind_key: str = "", epoch_key: str = "", on_rewound=None):
        self.l1 = l1
        self.l2 = l2
        self.pid = os.getpid()
        self.channel = channel
        self.client_name = client_name
        self.ack_key = ack_key  # callable(seq) -> the list the writer of `seq` waits on
        self.sequence_key = sequence_key
        self.rewind_key = rewind_key
        self.epoch_key = epoch_key
        self.on_rewound = on_rewound  # callable(token): re-apply what Redis lost, then release the mark
        self.high_water = 0  # the highest sequence this process has seen (never reset)
        self.received_high = 0  # the highest received in a message (never reset)
        self._suspect = 0  # a sequence a write of this process got that we had already received
        # The sequence a rewind was repaired at (this subscription): numbers below it that arrive
        # twice were published before the repair moved the sequence on, and prove nothing new.
        self.rewound_to = 0
        self.rewinds = 0  # times this subscriber found Redis back in time
        self._rewind_checked = 0.0
        self.subscribed = threading.Event()
        self.messages = 0
        self.bad_messages = 0
        self.drops = 0
        self.restarts = 0
        self.last_seq = 0
        self.state = CONNECTING
        self.stuck_count = 0
        self.heartbeat = time.monotonic()  # the loop's last turn (several times a second)
        self._fd: int | None = None  # the subscribed socket (unapplied() polls it)
        self._draining = False  # between reading messages off the socket and applying them
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a reconnect backoff short (stop, Redis back)
        self._thread = threading.Thread(target=self._run, name="caching-l1-subscriber", daemon=True)
        # L1 answers only once this subscriber has heard Redis (its first subscription).
        l1.on_lapse = self._lapsed
        l1.revoke_trust(counted=False)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if timeout and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        return self.subscribed.wait(timeout)

    def unapplied(self) -> bool:
        """Has an invalidation reached this process that L1 has not applied yet? True while the
        subscribed socket holds unread bytes (polled without reading: ~2 us) or the thread is
        applying what it read. Checked first the socket, then the flag: the thread sets the
        flag before it reads, so no message slips between the two checks."""
        fd = self._fd
        if fd is not None:
            try:
                if select.select((fd,), (), (), 0)[0]:
                    return True
            except (OSError, ValueError):  # closed by a reconnect: the thread clears L1 anyway
                return True
        return self._draining

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _backoff(self, delay: float) -> float:
        """Wait `delay` (or until stopped or woken); return the next, doubled up to 2 s."""
        self._wake.wait(delay)
        self._wake.clear()
        return min(delay * 2, 2.0)

    def wrote(self, seq: int, received_before: int) -> None:
        """A write of this process was given sequence `seq`; `received_high` was
        `received_before` when it started. A number at or below that was published before the
        write's script ran: Redis reused it (it went back in time, and writes since brought the
        sequence up to our mark while we were not subscribed): checked at the loop's next turn
        (<= 0.25 s). (Compared with `received_high` now, our own message may already be in.)"""
        if seq <= received_before:
            self._suspect = max(self._suspect, seq)

    def redis_is_back(self) -> None:
        """A face's Redis call just succeeded while this subscriber still counts Redis as down:
        what L1 filled meanwhile is covered by no broadcast (writes made during the outage are
        invalidated by the CDN drain, whose broadcast we would miss). Empty L1 and refuse fills
        now, and reconnect without waiting for the backoff."""
        if self.state == DOWN:
            self.state = CONNECTING
            self.l1.clear()
            metrics.count_invalidation("l1_flush")
            self._wake.set()

    def _lapsed(self) -> None:
        """L1's trust ran out or was revoked (called by L1, in whichever thread noticed)."""
        metrics.count_invalidation("l1_distrusted")
        logger.warning("L1 not trusted: Redis not heard on %s within L1_TRUST_SECONDS (%.1f s): emptied, "
                       "short copies only until it answers", self.channel, self.l1.trust_seconds)

    def _lost(self, reason: str, state: str, *, clear: bool = False) -> None:
        """The subscription is not to be trusted: empty L1 once per loss (not per failed retry:
        L1 keeps serving fresh fills while Redis is down, each for L1_TRUST_SECONDS), or always
        with `clear`; the resubscription clears again."""
        self._fd = None  # nothing to poll until resubscribed (a closed descriptor would read as pending)
        self.l1.revoke_trust()
        if clear:
            self.l1.clear()
        self.state = state
        if self.subscribed.is_set():
            self.drops += 1
            logger.warning("L1 invalidation subscription lost (%s): L1 cleared, resubscribing", reason)
            self.subscribed.clear()
            self.l1.clear()
            metrics.count_invalidation("l1_flush")

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            # A reconnect attempt is a turn of the loop too (one every <= 2 s backoff + connect
            # timeout): without it a Redis outage longer than the engine's stuck threshold read
            # as "stuck" and turned L1 fills off, so every request went to the database.
            self.heartbeat = time.monotonic()
            pubsub = None
            try:
                if self.state not in (STUCK, DOWN):  # those hold until the confirmation arrives
                    self.state = CONNECTING
                subscribing_at = time.monotonic()
                pubsub = self.l2.subscription_client(self.client_name).pubsub()
                pubsub.subscribe(self.channel)
                pinged_at = None  # when the unanswered PING was sent
                answered_at = time.monotonic()
                while not self._stop.is_set():
                    now = self.heartbeat = time.monotonic()
                    if pinged_at is None and now - answered_at >= PING_EVERY:
                        pubsub.ping(PING_MESSAGE)
                        pinged_at = now
                    since_check = now - self._rewind_checked
                    suspect, self._suspect = self._suspect, 0
                    if suspect >= max(self.rewound_to, 1) and self.state == OK:
                        self._check_rewound(floor=max(self.high_water, suspect) + 1)
                    elif (self.state == REWOUND and since_check >= REWIND_POLL) or (
                            self.state == OK and since_check >= REWIND_CHECK_EVERY):
                        self._check_rewound()
                    if self.state == REWOUND:
                        wait = REWIND_POLL
                    elif pinged_at is None:
                        wait = min(0.25, max(0.0, answered_at + PING_EVERY - time.monotonic()))
                    else:
                        wait = 0.25
                    if not self._wait_readable(pubsub, wait):
                        # Only when nothing is waiting in the socket: a thread that was not
                        # scheduled for a while reads its answer before judging the connection.
                        if pinged_at is not None and time.monotonic() - pinged_at > STUCK_AFTER:
                            raise _Stuck(f"no answer to a PING for {time.monotonic() - pinged_at:.1f}s")
                        continue
                    self._draining = True  # before the first read: see unapplied()
                    try:
                        while (message := pubsub.get_message(timeout=0)) is not None:
                            kind = message["type"]
                            if kind == "message":
                                self._apply(message["data"])
                            elif kind == "pong":
                                # Every message published before Redis read our PING is applied
                                # (they came first, in order): L1 may answer up to then + trust.
                                if pinged_at is not None and self.state == OK:
                                    self.l1.trust_until(pinged_at)
                                pinged_at, answered_at = None, time.monotonic()
                            elif kind == "subscribe":
                                # New or re-established subscription: whatever was published
                                # while we were not listening is lost: L1 cannot be trusted.
                                self.l1.clear()
                                self.last_seq = 0
                                metrics.count_invalidation("l1_flush")
                                # The first PING at the next turn: the trust this subscription
                                # gives runs from when it was asked, which may be a while ago.
                                pinged_at, answered_at = None, -PING_EVERY
                                backoff = 0.05
                                self.rewound_to = 0  # a new connection: no message from before a repair arrives on it
                                self._check_rewound(seed=True)  # OK, or REWOUND until the lost invalidations are re-applied
                                if self.state == OK:
                                    # Everything published before we asked is covered by the
                                    # clear above; everything after arrives on this connection.
                                    self.l1.trust_until(subscribing_at)
                    finally:
                        self._draining = False
            except _Stuck as exc:
                self.stuck_count += 1
                metrics.count_invalidation("subscriber_stuck")
                logger.error("L1 invalidation subscription stuck (%s): L1 cleared and off, reconnecting", exc)
                self._lost(str(exc), STUCK, clear=True)
                backoff = self._backoff(backoff)
            except REDIS_ERRORS as exc:
                if self.subscribed.is_set():
                    metrics.count_invalidation("subscriber_lost")
                self._lost(str(exc), DOWN)
                backoff = self._backoff(backoff)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug: L1 is cleared instead
                self.restarts += 1
                metrics.count_invalidation("subscriber_restart")
                logger.exception("L1 subscriber failed (%s): L1 cleared, resubscribing", exc)
                self._lost(repr(exc), CONNECTING, clear=True)
                backoff = self._backoff(backoff)
            finally:
                self._fd = None
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except REDIS_ERRORS:
                        pass  # the connection is already gone; nothing to close cleanly
                    pubsub.connection_pool.disconnect()
        self.subscribed.clear()
        self.state = CONNECTING

    def _wait_readable(self, pubsub, timeout: float) -> bool:
        """Block until the subscribed socket has bytes (or `timeout`); remember its descriptor
        for unapplied(). No socket yet (redis-py reconnects inside get_message): True."""
        conn = pubsub.connection
        sock = getattr(conn, "_sock", None) if conn is not None else None  # redis-py's socket
        if sock is None:
            self._fd = None
            return True
        try:
            self._fd = sock.fileno()
            return bool(select.select((self._fd,), (), (), timeout)[0])
        except (OSError, ValueError):
            return True  # closed under us: get_message raises the connection error

    def _apply(self, data: bytes) -> None:
        try:
            message = parse(data)
        except ValueError as exc:
            self.bad_messages += 1
            metrics.count_invalidation("l1_bad_message")
            logger.warning("ignored a message on %s that is not an invalidation (%s)", self.channel, exc)
            return
        if message.seq < self.last_seq:
            logger.warning(
                "invalidation sequence went backwards on %s (%d after %d): Redis lost writes, L1 cleared",
                self.channel, message.seq, self.last_seq,
            )
            self.l1.clear()
            metrics.count_invalidation("l1_flush")
        # A number already received (each is published once, in order) or below what we saw:
        # Redis went back in time without dropping our connection, and writes since may have
        # brought its sequence back up to our mark: a reused number is proof enough.
        reused = self.rewound_to <= message.seq <= self.received_high
        if (reused or message.seq < self.high_water) and self.state == OK:
            self._check_rewound(floor=max(self.high_water, message.seq) + 1 if reused else 0)
        self.last_seq = message.seq
        self.received_high = max(self.received_high, message.seq)
        self.high_water = max(self.high_water, message.seq)
        self.messages += 1
        if message.kind == CLEAR:
            self.l1.clear()
            metrics.count_invalidation("l1_flush")
            return
        self.l1.invalidate(message.seq, message.items, echo=True)
        metrics.count_invalidation("l1_message")
        if message.committed_at is not None:
            metrics.INVALIDATION_LAG.labels("l1").observe(max(0.0, time.time() - message.committed_at))
        if message.kind == ACKNOWLEDGED:
            self._acknowledge(message.seq)

    def _check_rewound(self, floor: int = 0, *, seed: bool = False) -> None:
        """rewind.lua with our high-water mark: OK (subscribed) when Redis has not gone back in
        time or the re-application is over; else REWOUND (L1 emptied and off), and when we are
        the first to notice, the engine's reaction starts. `floor`: a sequence Redis must be
        above (a reused number was received). Redis unusable: a connection error, the loop
        resubscribes."""
        self._rewind_checked = time.monotonic()
        if not self.sequence_key:
            status, seq, token = REWIND_NONE, 0, ""
        else:
            token = f"{self.pid}:{os.urandom(6).hex()}"
            try:
                status, seq = self._rewind_status(max(self.high_water, floor), token, seed)
            except L2Unavailable as exc:
                raise redis.exceptions.ConnectionError(f"rewind check: {exc}") from exc
            if status == REWIND_REACT:
                self.rewound_to = seq
                self.rewinds += 1
                metrics.count_invalidation("l2_rewound")
                logger.error(
                    "Redis went back in time on %s (its sequence was below %d, the highest this process saw; "
                    "moved to %d): L1 off, re-applying the invalidations it lost", self.channel, self.high_water, seq,
                )
                if self.on_rewound is not None:
                    self.on_rewound(token)
        self.high_water = max(self.high_water, seq)
        if status == REWIND_NONE:
            if self.state == REWOUND:
                self.rewound_to = max(self.rewound_to, seq)
                logger.warning("invalidations lost by Redis re-applied on %s: L1 back on", self.channel)
            self.state = OK
            self.subscribed.set()
            return
        if self.state != REWOUND:
            self.state = REWOUND
            self.subscribed.clear()
            self.l1.revoke_trust()
            self.l1.clear()
            metrics.count_invalidation("l1_flush")

    def _rewind_status(self, mark: int, token: str, seed: bool) -> tuple[int, int]:
        """rewind.lua's answer for `mark`. The usual case (the sequence at or above the mark, no
        rewind mark set) costs one MGET, not a script; an absent sequence is seeded (`seed`: on a
        (re)subscription, so every snapshot taken while we are subscribed holds one) with TIME and
        SET NX; rewind.lua runs only when Redis may have gone back in time (it decides who
        reacts, atomically)."""
        client = self.l2.client
        if seed and self.epoch_key:
            # A resubscription: does the data belong to this server's lifetime? (one INFO per
            # reconnect; no script unless another server's run_id is there: rewind.lua decides
            # atomically and records the new epoch.)
            run_id = str(self.l2.call(client.info, "server").get("run_id", ""))
            raw, rewinding, epoch = self.l2.call(client.mget, [self.sequence_key, self.rewind_key, self.epoch_key])
            if epoch is None:
                self.l2.call(client.set, self.epoch_key, run_id, nx=True)
            elif epoch.decode() != run_id:
                status, seq = self.l2.script(
                    "rewind", [self.sequence_key, self.rewind_key, self.epoch_key],
                    [mark, token, REWIND_MARK_TTL_MS, run_id],
                )
                return int(status), int(seq)
        else:
            raw, rewinding = self.l2.call(client.mget, [self.sequence_key, self.rewind_key])
        if rewinding is not None:
            return REWIND_WAIT, int(raw or 0)
        if raw is not None and int(raw) >= mark:
            return REWIND_NONE, int(raw)
        if raw is None:
            if not seed:  # emptied in place (FLUSHDB): the next write seeds it
                return REWIND_NONE, 0
            # Seeded as next_sequence would (Redis TIME, us); NX: a write that seeded it first wins.
            sec, usec = self.l2.call(client.time)
            value = int(sec) * 1_000_000 + int(usec)
            self.l2.call(client.set, self.sequence_key, value, nx=True)
            return REWIND_NONE, value
        status, seq = self.l2.script("rewind", [self.sequence_key, self.rewind_key], [mark, token, REWIND_MARK_TTL_MS])
        return int(status), int(seq)

    def _acknowledge(self, seq: int) -> None:
        """Tell the writer this L1 has applied `seq` (on the engine's own pool: this thread's
        connection is in subscribe mode). Redis unusable: the writer times out, counts it."""
        key = self.ack_key(seq)
        client = self.l2.client

        def run():
            pipe = client.pipeline(transaction=False)
            pipe.rpush(key, self.pid)
            pipe.pexpire(key, ACK_TTL_MS)
            pipe.execute()

        try:
            self.l2.call(run)
        except L2Unavailable:
            pass
