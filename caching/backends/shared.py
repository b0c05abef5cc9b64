"""What the Django cache backend shares inside one process: one `Tiers` per (LOCATION, OPTIONS).

Django builds a backend instance per thread (and again after each CACHES override), so the L1,
the Redis pool, the breaker and the subscriber thread cannot live on the instance: they live
here, created lazily on first use (never at import), dropped in a forked child (it builds its
own: locks, threads and subscriptions do not survive fork).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import redis

from caching import keys, metrics
from caching.broadcast import Subscriber
from caching.l1 import L1
from caching.l2 import L2

FIRST_SUBSCRIBE_WAIT = 0.5

_LUA_DIR = Path(__file__).resolve().parent / "lua"
_COMMON = (_LUA_DIR / "common.lua").read_text()
_WRITE_SCRIPTS = ("set", "delete", "touch", "incr", "clear")
SCRIPT_TEXT = {name: _COMMON + "\n" + (_LUA_DIR / f"{name}.lua").read_text() for name in _WRITE_SCRIPTS}
SCRIPT_TEXT["get"] = (_LUA_DIR / "get.lua").read_text()


@dataclass(frozen=True)
class Spec:
    """The validated configuration of one backend (hashable: it keys the per-process registry)."""

    location: str
    namespace: str
    l1_enabled: bool
    l1_max_entries: int
    l1_max_bytes: int
    l1_max_item_bytes: int
    l1_ttl: float
    l1_key_prefixes: tuple | None  # None: every key may live in L1
    l1_key_filter: object  # callable(key) -> bool, or None
    fail_open: bool
    breaker_failures: int
    breaker_reset: float
    pool_kwargs: tuple  # sorted (name, value) pairs for redis.ConnectionPool.from_url
    metrics_label: str


class Tiers:
    """L1 (optional) + L2 (Redis behind the breaker) + the subscriber of one backend config."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.pid = os.getpid()
        self._pool = None
        self._lock = threading.Lock()
        self.l2 = L2(
            breaker_failures=spec.breaker_failures,
            breaker_reset=spec.breaker_reset,
            connect=self.client,
            tier=f"l2:{spec.metrics_label}",
        )
        self.l1 = (
            L1(
                max_bytes=spec.l1_max_bytes,
                max_entries=spec.l1_max_entries,
                max_item_bytes=spec.l1_max_item_bytes,
                tag_seq_ttl=600,
            )
            if spec.l1_enabled
            else None
        )
        self.index_key = keys.backend_index_key(spec.namespace)
        self.seq_key = keys.backend_sequence_key(spec.namespace)
        self.channel = ""
        self.subscriber: Subscriber | None = None
        self.stats = metrics.stats_for(spec.metrics_label)
        self.scripts: dict = {}
        self.degraded = 0  # operations answered without Redis (FAIL_OPEN)

    def client(self) -> redis.Redis:
        """A client on this config's own pool (created on first use; redis-py re-creates its
        connections in a forked child by itself)."""
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = redis.ConnectionPool.from_url(self.spec.location, **dict(self.spec.pool_kwargs))
                pool = self._pool
        return redis.Redis(connection_pool=pool)

    def start(self) -> None:
        """Register the scripts and, with an L1, subscribe (waiting briefly for the first
        subscription: it clears L1, so fills made before it would be thrown away)."""
        client = self.l2.client
        self.scripts = {name: client.register_script(text) for name, text in SCRIPT_TEXT.items()}
        if self.l1 is None:
            return
        db = self._pool.connection_kwargs.get("db", 0)
        self.channel = keys.backend_channel(self.spec.namespace, db)
        self.subscriber = Subscriber(
            self.l1,
            channel=self.channel,
            connect=self.client,
            client_name=keys.backend_subscriber_client_name(self.spec.namespace, self.pid),
        )
        self.subscriber.start()
        self.subscriber.wait_subscribed(FIRST_SUBSCRIBE_WAIT)

    def execute(self, calls: list) -> list:
        """Run [(script name or "mget", keys, args)] in one round trip and return the replies.
        One call: a plain EVALSHA (redis-py reloads a missing script). Several: one pipeline of
        EVALSHAs (not redis-py's pipeline scripts, which add a SCRIPT EXISTS round trip to every
        execute), reloading the scripts once if Redis lost them. Raises the first error reply."""
        client = self.l2.client
        if len(calls) == 1 and calls[0][0] != "mget":
            name, keys_, args = calls[0]
            return [self.scripts[name](keys=keys_, args=args, client=client)]
        for _ in range(2):
            pipe = client.pipeline(transaction=False)
            for name, keys_, args in calls:
                if name == "mget":
                    pipe.mget(keys_)
                else:
                    pipe.evalsha(self.scripts[name].sha, len(keys_), *keys_, *args)
            replies = pipe.execute(raise_on_error=False)
            if not any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                break
            for script in self.scripts.values():  # Redis restarted or flushed its scripts
                client.script_load(script.script)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def eligible(self, key: str) -> bool:
        """May `key` (as passed to the cache, before KEY_PREFIX and version) live in L1?"""
        if self.l1 is None:
            return False
        spec = self.spec
        if spec.l1_key_filter is not None:
            return bool(spec.l1_key_filter(key))
        if spec.l1_key_prefixes is not None:
            return key.startswith(spec.l1_key_prefixes)
        return True

    def l1_live(self) -> bool:
        """L1 is filled only while the invalidation subscription is up."""
        sub = self.subscriber
        return sub is not None and sub.subscribed.is_set()

    def stop(self) -> None:
        if self.subscriber is not None:
            self.subscriber.stop(timeout=0)

    def snapshot(self) -> dict:
        sub = self.subscriber
        return {
            "namespace": self.spec.namespace,
            "l1": self.l1.snapshot() if self.l1 is not None else None,
            "subscribed": bool(sub and sub.subscribed.is_set()),
            "messages": sub.messages if sub else 0,
            "breaker": self.l2.breaker.snapshot(),
            "degraded": self.degraded,
        }


_registry: dict[Spec, Tiers] = {}
_registry_lock = threading.Lock()
generation = 0  # bumped after fork: backend instances compare it to re-bind


def tiers_for(spec: Spec) -> Tiers:
    """This process's Tiers of `spec` (created and started on first use)."""
    tiers = _registry.get(spec)
    if tiers is None:
        with _registry_lock:
            tiers = _registry.get(spec)
            if tiers is None:
                tiers = Tiers(spec)
                tiers.start()
                _registry[spec] = tiers
    return tiers


def all_tiers() -> list[Tiers]:
    return list(_registry.values())


def clear_local() -> None:
    """Empty every L1 of this process (tests; Redis is untouched)."""
    for tiers in all_tiers():
        if tiers.l1 is not None:
            tiers.l1.clear()


def reset() -> None:
    """Forget every Tiers of this process (tests): subscribers are told to stop (their threads
    exit within a second) and backend instances re-bind on their next call."""
    global _registry, generation
    with _registry_lock:
        old, _registry = _registry, {}
        generation += 1
    for tiers in old.values():
        tiers.stop()


def _after_fork_in_child() -> None:
    global _registry, _registry_lock, generation
    _registry = {}
    _registry_lock = threading.Lock()
    generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)
