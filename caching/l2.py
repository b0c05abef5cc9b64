"""L2: Redis through django-redis, behind a circuit breaker.

The raw client comes from `django_redis.get_redis_connection("default")` (or from the `connect`
callable given to L2, e.g. the Django cache backend's own pool), lazily, on first use (redis-py's
pool notices a fork by itself). Every call goes through `_call`: when the breaker is
open it raises `L2Unavailable` without touching the network; a connection or timeout error (and
only those) counts as a breaker failure and is turned into `L2Unavailable`. A hit is one GET.
"""

from __future__ import annotations

import threading
from pathlib import Path

import redis
from django_redis import get_redis_connection

from caching.breaker import CircuitBreaker

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

_LUA_DIR = Path(__file__).resolve().parent / "lua"
_SCRIPT_NAMES = ("acquire", "fill", "invalidate", "release")
_SCRIPT_TEXT = {name: (_LUA_DIR / f"{name}.lua").read_text() for name in _SCRIPT_NAMES}


class L2Unavailable(Exception):
    """Redis cannot be used right now (breaker open, or a connection/timeout error)."""


class L2:
    def __init__(self, *, breaker_failures: int, breaker_reset: float, connect=None, tier: str = "l2"):
        self.breaker = CircuitBreaker(tier, failures=breaker_failures, reset_after=breaker_reset)
        self._connect = connect  # zero-argument callable returning a redis.Redis; None: CACHES default
        self._client = None
        self._scripts = None
        self._lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    raw = self._connect() if self._connect is not None else get_redis_connection("default")
                    self._scripts = {name: raw.register_script(text) for name, text in _SCRIPT_TEXT.items()}
                    self._client = raw
                client = self._client
        return client

    def _call(self, fn, *args, **kwargs):
        breaker = self.breaker
        if not breaker.allow():
            raise L2Unavailable("circuit breaker open")
        try:
            result = fn(*args, **kwargs)
        except REDIS_ERRORS as exc:
            breaker.failure(exc)
            raise L2Unavailable(str(exc)) from exc
        breaker.success()
        return result

    call = _call  # public: run fn(*args) through the breaker (used by caching/backends/)

    def _script(self, name: str, keys: list, args: list):
        client = self.client
        return self._call(self._scripts[name], keys=keys, args=args, client=client)

    # --- operations ---------------------------------------------------------------------------

    def get(self, vkey: str) -> bytes | None:
        """One GET: the envelope or None."""
        client = self.client
        return self._call(client.get, vkey)

    def mget_and_sequence(self, vkeys: list[str], seq_key: str) -> tuple[list, int]:
        """One round trip: the envelopes of `vkeys` and the current invalidation sequence."""
        client = self.client

        def run():
            pipe = client.pipeline(transaction=False)
            pipe.mget(vkeys)
            pipe.get(seq_key)
            return pipe.execute()

        raws, seq = self._call(run)
        return raws, int(seq or 0)

    def acquire(self, vkey: str, lkey: str, seq_key: str, token: str, lease_ms: int, seen: str):
        status, payload = self._script("acquire", [vkey, lkey, seq_key], [token, lease_ms, seen])
        return int(status), payload

    def fill(self, vkey: str, lkey: str, tag_keys: list, bucket_keys: list, *, token: str, start_seq: int,
             envelope: bytes, ttl_ms: int, buckets_expire_at: int) -> int:
        """1 stored, 0 refused (a tag was invalidated after start_seq), -1 another holds the lease."""
        return int(self._script(
            "fill",
            [vkey, lkey, *tag_keys, *bucket_keys],
            [token, start_seq, envelope, ttl_ms, len(tag_keys), buckets_expire_at],
        ))

    def fill_many(self, fills: list[tuple[list, list]]) -> list:
        """Run fill.lua for many entries in one pipelined round trip. `fills`: (keys, args)."""
        client = self.client
        script = self._scripts["fill"]

        def run():
            pipe = client.pipeline(transaction=False)
            for keys, args in fills:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = pipe.execute(raise_on_error=False)
            if any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
                client.script_load(script.script)  # Redis restarted or flushed its scripts
                pipe = client.pipeline(transaction=False)
                for keys, args in fills:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                results = pipe.execute(raise_on_error=False)
            for r in results:
                if isinstance(r, REDIS_ERRORS):
                    raise r
            return results

        return self._call(run)

    def release(self, lkey: str, token: str) -> None:
        self._script("release", [lkey], [token])

    def invalidate(self, seq_key: str, tag_keys: list, bucket_keys: list, *, ttl: int, channel: str,
                   tags: list) -> tuple[int, int]:
        seq, deleted = self._script(
            "invalidate", [seq_key, *tag_keys, *bucket_keys], [len(tag_keys), ttl, channel, "\n".join(tags)]
        )
        return int(seq), int(deleted)
