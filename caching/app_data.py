"""An app's own data in the cache's Redis, through the engine's breaker: what view counters, a
warm-up, a throttle or a freshness probe need, without reaching into the engine.

- `Script`: a Lua script of the app's own (articles/lua/), one EVALSHA per call.
- `Lock`: a non-blocking lock that expires by itself (redis-py's Lock: only its holder releases it).
- `command(name, ...)`: one redis-py command; `pipeline(build)`: several in one round trip.
- `peek(key)`: what L2 holds for a key of `caching.fetch`, read raw (nothing filled, leased or
  put in L1).

Everything runs on the fetch face's engine (Redis of CACHES["default"]) and raises
`caching.L2Unavailable` when Redis cannot be used (breaker open, connection error, a refused
command, L2_ENABLED False) - `caching.L2Timeout` when a command timed out and may have run.
Errors of the caller's own making (redis-py's DataError) propagate unchanged. Build the keys with
`caching.keys.app_key` (under the CACHES KEY_PREFIX).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from caching import engine, keys
from caching.envelope import Envelope, is_lease


def _l2():
    return engine.default().l2


class Script:
    """A Lua script of an app's own, registered with the engine on first use and run with
    EVALSHA (redis-py loads it again when Redis lost it). Define it once, at import."""

    def __init__(self, source: str, *, name: str):
        self.source = source
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> Script:
        path = Path(path)
        return cls(path.read_text(), name=path.stem)

    def __call__(self, keys: list, args: list = ()):
        """The script's reply. One round trip."""
        return _l2().run_script(self, list(keys), list(args))

    def __repr__(self) -> str:
        return f"<Script {self.name}>"


class Lock:
    """A lock on `key` that expires after `timeout` seconds; `acquire()` never waits."""

    def __init__(self, key: str, *, timeout: float):
        self.key = key
        self.timeout = timeout
        self._lock: redis.lock.Lock | None = None

    def acquire(self) -> bool:
        """True when this call took the lock, False when another holder has it. One round trip."""
        l2 = _l2()
        self._lock = l2.client.lock(self.key, timeout=self.timeout, blocking=False)
        return bool(l2.call(self._lock.acquire))

    def release(self) -> bool:
        """Give the lock back: False when it was no longer ours (it expired, and maybe another
        holder took it meanwhile). One round trip."""
        if self._lock is None:
            return False
        try:
            _l2().call(self._lock.release)
        except redis.exceptions.LockError:
            return False
        finally:
            self._lock = None
        return True


def command(name: str, *args, **kwargs):
    """One redis-py command by its method name, e.g. `command("zunion", {...}, withscores=True)`:
    its reply."""
    l2 = _l2()
    return l2.call(getattr(l2.client, name), *args, **kwargs)


def pipeline(build: Callable[[redis.client.Pipeline], object], *, transaction: bool = False) -> list:
    """The replies of the commands `build(pipe)` queues on a redis-py pipeline, sent in one round
    trip (MULTI/EXEC around them with `transaction`)."""
    l2 = _l2()

    def run():
        pipe = l2.client.pipeline(transaction=transaction)
        build(pipe)
        return pipe.execute()

    return l2.call(run)


@dataclass(frozen=True)
class Stored:
    """A value L2 holds for a key of `caching.fetch` (`value` None: a cached None, e.g. a 404)."""

    value: object
    tags: tuple
    filled_at: float
    soft_expiry: float


def peek(key: str) -> Stored | None:
    """L2's entry of `key`, read raw: None when there is none, or while a process loads it (its
    lease). Nothing is filled, leased or put in L1. One GET."""
    face_engine = engine.default()
    raw = face_engine.l2.get(keys.value_key(face_engine.namespace, key))
    if raw is None or is_lease(raw):
        return None
    entry = Envelope(raw)
    return Stored(value=entry.value, tags=tuple(entry.tags), filled_at=entry.filled_at, soft_expiry=entry.soft_expiry)
