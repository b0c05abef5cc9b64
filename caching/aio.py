"""The engine's Redis side on `redis.asyncio`, for the async faces (TieredCache's aget/aset...,
caching/backends/tiered_async.py; `afetch()`, caching/afetch.py).

`l2_for(engine.l2)` is the running event loop's `AsyncL2` of an engine's L2: a redis.asyncio
client of its own (connections belong to the loop that opened them), built lazily on the loop's
first call from the sync client's connection settings, with the same Lua scripts
(caching/lua/, each with common.lua) and behind the same circuit breaker and error counting
(`L2.admit`, `L2.failed`): an error on either half opens the breaker for both. Nothing here
touches L1: the async faces read it directly, as the sync ones do (an L1 hit does no I/O).
"""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aredis
from redis.asyncio import connection as aconnection

from caching.l2 import (
    _CALLER_ERRORS,
    L2,
    SCRIPT_TEXT,
    L2Unavailable,
    error_kind,
    first_error_raised,
    queue_calls,
    scripts_lost,
)

# redis-py's sync connection classes and their asyncio twins (same keyword arguments).
_CONNECTION_CLASSES = {
    redis.connection.Connection: aconnection.Connection,
    redis.connection.SSLConnection: aconnection.SSLConnection,
    redis.connection.UnixDomainSocketConnection: aconnection.UnixDomainSocketConnection,
}
# The connection settings an asyncio connection takes as they are (an allow-list: a sync pool
# also holds sync-only objects - its parser class, retry, maintenance-notification handlers).
_PORTABLE = frozenset({
    "host", "port", "db", "username", "password", "credential_provider", "path", "socket_timeout",
    "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options", "health_check_interval",
    "client_name", "lib_name", "lib_version", "encoding", "encoding_errors", "decode_responses",
    "retry_on_timeout", "protocol", "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs",
    "ssl_ca_data", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers",
})


def async_client(client: redis.Redis) -> aredis.Redis:
    """A redis.asyncio client on the server, database and credentials of `client`'s pool."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _PORTABLE}
    connection_class = _CONNECTION_CLASSES.get(pool.connection_class, aconnection.Connection)
    max_connections = getattr(pool, "max_connections", None) or 2**31
    return aredis.Redis.from_pool(aconnection.ConnectionPool(  # its aclose() closes the pool
        connection_class=connection_class, max_connections=max_connections, **kwargs))


class AsyncL2:
    """One event loop's half of an `L2`: the same calls (`call`, `script`, `execute`,
    `get_or_lease`) as coroutines."""

    def __init__(self, l2: L2):
        self.l2 = l2
        self.client = async_client(l2.client)
        self._scripts = {name: self.client.register_script(text) for name, text in SCRIPT_TEXT.items()}

    async def call(self, fn, *args, **kwargs):
        """await fn(*args, **kwargs) through the engine's breaker (L2.call's contract)."""
        self.l2.admit()
        return await self._reported(fn, args, kwargs)

    async def _reported(self, fn, args, kwargs):
        """L2._reported: await fn(*args, **kwargs), its outcome reported to the breaker."""
        l2 = self.l2
        try:
            result = await fn(*args, **kwargs)
        except _CALLER_ERRORS:
            raise
        except redis.exceptions.RedisError as exc:
            raise l2.failed(exc) from exc
        l2.breaker.success()
        return result

    async def script(self, name: str, keys: list, args: list):
        """One EVALSHA of caching/lua/<name>.lua (reloaded if Redis lost it)."""
        return await self.call(self._scripts[name], keys=keys, args=args, client=self.client)

    async def script_for_write(self, name: str, keys: list, args: list):
        """L2.script_for_write: a write's invalidation, past an open breaker (L2.admit_write)."""
        l2 = self.l2
        probing = l2.admit_write()
        try:
            return await self._reported(self._scripts[name], (), {"keys": keys, "args": args, "client": self.client})
        finally:
            if probing:
                l2.write_probe.release()

    async def execute(self, calls: list) -> list:
        """L2.execute: [(script name or "mget", keys, args)] in one round trip, their replies."""
        if len(calls) == 1 and calls[0][0] != "mget":
            name, keys_, args = calls[0]
            return [await self.script(name, keys_, args)]
        return await self.call(self._pipelined, calls)

    async def _pipelined(self, calls: list) -> list:
        client = self.client
        for _ in range(2):
            pipe = queue_calls(client.pipeline(transaction=False), calls, self._scripts)
            replies = await pipe.execute(raise_on_error=False)
            if not scripts_lost(replies):
                break
            for script in self._scripts.values():  # Redis restarted or flushed its scripts
                await client.script_load(script.script)
        return first_error_raised(replies)

    async def get_or_lease(self, key: str, lease: str, ttl_ms: int) -> bytes | None:
        """L2.get_or_lease: SET key lease NX GET PX ttl (a plain GET when Redis refuses writes)."""
        return await self.call(self._get_or_lease, key, lease, ttl_ms)

    async def _get_or_lease(self, key, lease, ttl_ms):
        client = self.client
        try:
            return await client.execute_command("SET", key, lease, "NX", "GET", "PX", ttl_ms, get=True)
        except redis.exceptions.ResponseError as exc:
            kind = error_kind(exc)
            if kind not in ("oom", "readonly"):
                raise
            self.l2._errors(kind).inc()
        raw = await client.get(key)
        if raw is None:
            raise L2Unavailable(f"{kind}: {key} is absent and Redis refuses its lease")
        return raw


# L2 -> {event loop -> AsyncL2}: both weak, so a closed loop's clients and a reset engine's go.
_halves: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def l2_for(l2: L2) -> AsyncL2:
    """The running loop's AsyncL2 of `l2` (built on first use; no I/O until its first call)."""
    loop = asyncio.get_running_loop()
    per_loop = _halves.get(l2)
    if per_loop is None:
        per_loop = _halves.setdefault(l2, weakref.WeakKeyDictionary())
    half = per_loop.get(loop)
    if half is None:
        half = per_loop[loop] = AsyncL2(l2)
    return half


async def aclose() -> None:
    """Close the running loop's async Redis clients (a test's or a worker's loop about to end)."""
    loop = asyncio.get_running_loop()
    for per_loop in list(_halves.values()):
        half = per_loop.pop(loop, None)
        if half is not None:
            await half.client.aclose()
