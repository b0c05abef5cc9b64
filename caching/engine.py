"""The per-process engine under both faces of the tiered cache (docs/caching.md has the diagram).

One `Engine` per (process, EngineSettings): L1 (optional), L2 (the Redis client behind its
breaker, with the Lua scripts), the subscriber that keeps L1 coherent, and the namespace its keys
live in. Two thin faces use it, each owning only its value format:

- the fetch face (caching/fetcher.py, bulk.py; the response middleware): envelopes with soft
  expiry, tags, leases — `default()` is its engine, configured by settings.TIERED_CACHE (caching/conf.py);
- the key-value face (caching/backends/tiered.py, Django's cache API) — one engine per CACHES
  entry, configured by its LOCATION and OPTIONS.

Engines are created lazily on first use (never at import) and dropped in a forked child, which
builds its own: locks, threads and subscriptions do not survive fork. `reset()` (settings
changed, tests) stops every subscriber and forgets every engine; the faces' per-process state
registers with `on_reset` to be dropped with them.

Redis back in time (an older snapshot, a lagging replica promoted: caching/broadcast.py detects
it): the engine whose subscriber noticed first runs the `on_rewound` hooks in a thread of its
own - they re-apply the invalidations Redis lost (the CDN outbox's: cdn/purges.py) - retrying
until they succeed, then releases the namespace's rewind mark so every L1 turns back on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from caching import conf, keys, metrics
from caching.broadcast import DOWN, OK, REWIND_MARK_TTL_MS, Subscriber
from caching.conf import EngineSettings
from caching.l1 import L1
from caching.l2 import L2, L2Unavailable

logger = logging.getLogger(__name__)

FIRST_SUBSCRIBE_WAIT = 0.5
REWIND_RETRY_MAX = 30.0  # seconds between attempts of a failing re-application, at most
SUBSCRIBER_STUCK_AFTER = 5.0  # seconds without a turn of the subscriber loop (several a second; <= 2 s apart while reconnecting)


class Engine:
    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self.pid = os.getpid()
        self.namespace = settings.namespace
        self.l2 = L2(settings, tier=settings.metrics_label)
        self.l1 = (
            L1(
                max_bytes=settings.l1_max_bytes,
                max_entries=settings.l1_max_entries,
                max_item_bytes=settings.l1_max_item_bytes,
                tag_seq_ttl=settings.tag_seq_ttl,
                trust_seconds=settings.l1_trust_seconds,
            )
            if settings.l1_enabled
            else None
        )
        self.sequence_key = keys.sequence_key(self.namespace)
        self.channel = ""
        self.subscriber: Subscriber | None = None

    def start(self) -> None:
        """With an L1, subscribe to the channel and wait briefly for the first subscription
        (it clears L1, so fills made before it would be thrown away). Redis down: give up after
        FIRST_SUBSCRIBE_WAIT; the thread keeps retrying."""
        self.channel = keys.channel(self.namespace, self.l2.db)
        if self.l1 is None or not self.settings.l2_enabled:
            return  # no L1, or no Redis to subscribe to (L2_ENABLED False)
        self.subscriber = Subscriber(
            self.l1, l2=self.l2, channel=self.channel,
            client_name=keys.subscriber_client_name(self.namespace, self.pid),
            ack_key=lambda seq: keys.ack_key(self.namespace, seq),
            sequence_key=self.sequence_key, rewind_key=keys.rewind_key(self.namespace),
            epoch_key=keys.epoch_key(self.namespace),
            on_rewound=self._rewound,
        )
        self.l1.unapplied = self.subscriber.unapplied
        self.subscriber.start()
        self.subscriber.wait_subscribed(FIRST_SUBSCRIBE_WAIT)

    def stop(self) -> None:
        if self.subscriber is not None:
            self.subscriber.stop(timeout=0)

    def _rewound(self, token: str) -> None:
        """Redis went back in time and this process noticed first (it holds the rewind mark,
        `token`): re-apply what Redis lost in a thread (the subscriber keeps reading meanwhile:
        the re-application waits for every L1's acknowledgement, ours included)."""
        threading.Thread(target=self._reapply, args=(token,), name="caching-rewound", daemon=True).start()

    def _reapply(self, token: str) -> None:
        rewind_key = keys.rewind_key(self.namespace)
        delay = 0.5
        while self.subscriber is not None and not self.subscriber.stopped:  # reset: a new engine checks again
            try:
                # The replica fence's floor survived what Redis lost (it has no TTL) but may be
                # older than the lost marks: dropped, the next replica fill claims it and seeds
                # it with the primary's current write position (caching/fence.py).
                self.l2.call(self.l2.client.delete, keys.write_floor_key(self.namespace))
                for hook in list(on_rewound):
                    hook(self)
                break
            except Exception as exc:  # noqa: BLE001 - database or Redis down: keep the mark, retry
                metrics.count_invalidation("l2_rewound_retry")
                logger.error("re-applying the invalidations Redis lost failed (%s): retrying in %.1fs", exc, delay)
                try:  # hold the mark while we retry (it expires by itself if this process dies)
                    self.l2.call(self.l2.client.set, rewind_key, token, px=REWIND_MARK_TTL_MS)
                except L2Unavailable:
                    pass
                time.sleep(delay)
                delay = min(delay * 2, REWIND_RETRY_MAX)
        try:
            self.l2.script("release", [rewind_key], [token])
        except L2Unavailable:
            pass  # the mark expires by itself; the re-application is done
        logger.warning("invalidations lost by Redis re-applied (namespace %s)", self.namespace)

    def subscribed(self) -> bool:
        """True while the invalidation subscription is up (L1 is coherent)."""
        sub = self.subscriber
        return sub is not None and sub.subscribed.is_set()

    def subscriber_state(self) -> str:
        """"off" (no L1, or L2 disabled), "dead" (thread gone), "stuck" (its loop or its connection stopped
        answering, or Redis has not been heard for L1_TRUST_SECONDS while it claims to be
        subscribed: L1 is not trusted), "down" (Redis unreachable), "connecting" or "ok"."""
        sub = self.subscriber
        if self.l1 is None or not self.settings.l2_enabled:
            return "off"
        if sub is None or not sub.alive:
            return "dead"
        if time.monotonic() - sub.heartbeat > SUBSCRIBER_STUCK_AFTER:
            return "stuck"
        if sub.state == OK and time.monotonic() > self.l1.trusted_until:
            return "stuck"  # connected, yet nothing heard within the trust bound (a held connection)
        return sub.state

    def l1_fills_allowed(self) -> bool:
        """May the fetch face put values into L1 now? While subscribed, yes; while Redis is
        unreachable too (fail-open; L1 is not trusted then, so each copy lives
        L1_TRUST_SECONDS: caching/l1.py); never while (re)connecting, stuck or dead: nothing
        would remove a stale entry. With L2 disabled, always (L1 is all there is)."""
        sub = self.subscriber
        if sub is None and not self.settings.l2_enabled:
            return True
        return sub is not None and sub.state in (OK, DOWN) and time.monotonic() - sub.heartbeat <= SUBSCRIBER_STUCK_AFTER

    def snapshot(self) -> dict:
        sub = self.subscriber
        return {
            "namespace": self.namespace,
            "l1": self.l1.snapshot() if self.l1 is not None else None,
            "subscription": {
                "state": self.subscriber_state(),
                "subscribed": self.subscribed() and time.monotonic() <= self.l1.trusted_until
                if self.l1 is not None else self.subscribed(),
                "messages": sub.messages if sub else 0,
                "bad_messages": sub.bad_messages if sub else 0,
                "drops": sub.drops if sub else 0,
                "restarts": sub.restarts if sub else 0,
                "stuck": sub.stuck_count if sub else 0,
                "rewinds": sub.rewinds if sub else 0,
            },
            "breaker": self.l2.breaker.snapshot(),
        }


# --- the per-process registry -------------------------------------------------------------------

_engines: dict[EngineSettings, Engine] = {}
_lock = threading.Lock()
_default: Engine | None = None
generation = 0  # bumped by reset() and after fork: faces holding an engine compare it to re-bind
on_reset: list[Callable[[], None]] = []
# Called with an engine whose Redis went back in time (in that engine's re-application thread,
# by the process that noticed first): re-apply every invalidation Redis may have lost. An
# exception is retried with backoff; until they all return, every L1 of the namespace stays off.
on_rewound: list[Callable[[Engine], None]] = []


def engine_for(settings: EngineSettings) -> Engine:
    """This process's engine of `settings` (created and started on first use)."""
    engine = _engines.get(settings)
    if engine is None:
        with _lock:
            engine = _engines.get(settings)
            if engine is None:
                engine = Engine(settings)
                engine.start()
                _engines[settings] = engine
    return engine


def default() -> Engine:
    """The fetch face's engine (settings.TIERED_CACHE, Redis of CACHES["default"])."""
    global _default
    engine = _default
    if engine is None:
        engine = _default = engine_for(conf.get().engine)
    return engine


def redis_client():
    """The raw redis-py client of the default engine (ops probes, tests; no breaker)."""
    return default().l2.client


def all_engines() -> list[Engine]:
    return list(_engines.values())


def clear_local() -> None:
    """Empty every L1 of this process (tests; Redis is untouched)."""
    for engine in all_engines():
        if engine.l1 is not None:
            engine.l1.clear()


def _forget() -> list[Engine]:
    global _engines, _default, generation
    old, _engines, _default = list(_engines.values()), {}, None
    generation += 1
    for hook in list(on_reset):
        hook()
    return old


def reset() -> None:
    """Forget every engine of this process (settings changed, tests): subscribers are told to
    stop (their threads exit within a second) and faces re-bind on their next call."""
    with _lock:
        old = _forget()
    for engine in old:
        engine.stop()
    conf.reset()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _forget()
    metrics.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
