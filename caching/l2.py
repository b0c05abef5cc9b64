"""L2: the engine's Redis client, behind a circuit breaker. The only module that reaches Redis.

The client is built lazily, on first use (never at import; redis-py's pool notices a fork by
itself): django-redis's connection of CACHES[alias] for the fetch face, or a pool of its own from
a redis:// URL (TieredCache's LOCATION). Every call goes through `call()`: when the breaker is
open it raises `L2Unavailable` without touching the network. A Redis error counts as a breaker
failure, is counted in `*_cache_redis_errors_total{tier, kind}` and becomes
`L2Unavailable` (`L2Timeout` for a timeout, after which the command may or may not have run):
connection loss and timeouts, but also what a reachable Redis refuses - OOM under `maxmemory`
with `noeviction`, READONLY during a failover, NOPERM, a script error. The request is then
served from L1 and the loader. Errors of the caller's own making (redis-py's DataError, a
LockError of a lock it holds) propagate unchanged.

The Lua scripts of caching/lua/ are registered here, each with common.lua prepended; `script()`
runs one with a plain EVALSHA, `execute()` many (and MGETs) in one pipelined round trip. An app's
own scripts (caching.app_data.Script) are registered on their first `run_script()`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from caching import metrics
from caching.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# Raised by redis-py for the caller's own mistakes, not for the server's state: never degraded.
_CALLER_ERRORS = (redis.exceptions.DataError, redis.exceptions.LockError, redis.exceptions.WatchError)


def error_kind(exc: redis.exceptions.RedisError) -> str:
    """The `kind` label of a Redis error: connection, timeout, oom, readonly, noperm, script, other."""
    if isinstance(exc, redis.exceptions.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.exceptions.ConnectionError):
        return "connection"
    text = str(exc)
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM"):
        return "oom"
    if isinstance(exc, redis.exceptions.ReadOnlyError) or text.startswith("READONLY"):
        return "readonly"
    if isinstance(exc, redis.exceptions.NoPermissionError | redis.exceptions.AuthenticationError) or text.startswith(
        ("NOPERM", "NOAUTH", "WRONGPASS")
    ):
        return "noperm"
    if "script" in text.lower():
        return "script"
    return "other"

_LUA_DIR = Path(__file__).resolve().parent / "lua"
_COMMON = (_LUA_DIR / "common.lua").read_text()
SCRIPT_TEXT = {
    path.stem: _COMMON + "\n" + path.read_text() for path in sorted(_LUA_DIR.glob("*.lua")) if path.stem != "common"
}


class L2Unavailable(Exception):
    """Redis cannot be used right now (L2 disabled, breaker open, or a Redis error: see call())."""


class L2Timeout(L2Unavailable):
    """A command timed out: it may have been applied."""


class L2:
    def __init__(self, settings, *, tier: str = "l2"):
        self.settings = settings
        self.enabled = settings.l2_enabled  # False (L2_ENABLED): every call is L2Unavailable
        self.breaker = CircuitBreaker(tier, failures=settings.breaker_failures, reset_after=settings.breaker_reset)
        self._client = None
        self._scripts: dict = {}
        self._app_scripts: dict = {}  # caching.app_data.Script -> redis-py Script, on first use
        self._lock = threading.Lock()
        self.write_probe = threading.Lock()  # admit_write(): one write past an open breaker at a time
        self._error_counters: dict = {}

    # --- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis:
        """The raw redis-py client (no breaker: use call()/script() on request paths)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
                    self._scripts = {name: self._client.register_script(text) for name, text in SCRIPT_TEXT.items()}
                client = self._client
        return client

    def _connect(self) -> redis.Redis:
        settings = self.settings
        if settings.location is None:
            # django-redis only for this: a project that gives LOCATION needs no django-redis.
            from django_redis import get_redis_connection

            return get_redis_connection(settings.cache_alias)
        pool = redis.ConnectionPool.from_url(settings.location, **dict(settings.pool_kwargs))
        return redis.Redis(connection_pool=pool)

    @property
    def db(self) -> int:
        return int(self.client.connection_pool.connection_kwargs.get("db", 0) or 0)

    def subscription_client(self, client_name: str) -> redis.Redis:
        """A client on a small pool of its own (same server and credentials) for pub/sub."""
        pool = self.client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs["client_name"] = client_name
        # No silent reconnects inside a read (redis-py retries 10 times with backoff by default):
        # the subscriber reconnects itself, clearing L1, and must not sit in a read meanwhile
        # (its unapplied() would hold every L1 hit back for the whole retry).
        kwargs["retry"] = Retry(NoBackoff(), 0)
        own_pool = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=2, **kwargs)
        return redis.Redis(connection_pool=own_pool)

    # --- calls through the breaker --------------------------------------------------------------

    def call(self, fn, *args, **kwargs):
        """fn(*args, **kwargs) through the breaker."""
        self.admit()
        return self._reported(fn, args, kwargs)

    def _reported(self, fn, args, kwargs):
        """fn(*args, **kwargs), its outcome reported to the breaker (a Redis error raised as
        L2Unavailable)."""
        try:
            result = fn(*args, **kwargs)
        except _CALLER_ERRORS:
            raise
        except redis.exceptions.RedisError as exc:
            raise self.failed(exc) from exc
        self.breaker.success()
        return result

    def admit(self) -> None:
        """call()'s first step (the async face's too, caching/aio.py): L2Unavailable when L2 is
        disabled or the breaker is open."""
        if not self.enabled:
            raise L2Unavailable("L2 disabled (L2_ENABLED False)")
        if not self.breaker.allow():
            raise L2Unavailable("circuit breaker open")

    def failed(self, exc: redis.exceptions.RedisError) -> L2Unavailable:
        """A Redis error of a call: counted (breaker, metric, log) and returned as the
        L2Unavailable (L2Timeout) to raise."""
        kind = error_kind(exc)
        self.breaker.failure(exc)
        self._errors(kind).inc()
        if kind != "connection":
            logger.warning("redis error (%s) on %s: %s", kind, self.breaker.tier, exc)
        return (L2Timeout if kind == "timeout" else L2Unavailable)(f"{kind}: {exc}")

    def _errors(self, kind: str):
        child = self._error_counters.get(kind)
        if child is None:
            child = self._error_counters[kind] = metrics.REDIS_ERRORS.labels(self.breaker.tier, kind)
        return child

    def get(self, key: str) -> bytes | None:
        """One GET."""
        client = self.client
        return self.call(client.get, key)

    def get_or_lease(self, key: str, lease: str, ttl_ms: int) -> bytes | None:
        """One SET key lease NX PX ttl GET (Redis >= 7.0): the key's value, or None when it was
        absent and now holds `lease` (the caller loads it). On a key that exists it writes
        nothing, so a hit costs what a GET does. A Redis that refuses writes (OOM under
        noeviction, a READONLY replica) still answers reads: then a plain GET, counted, and an
        absent key raises L2Unavailable (nobody can fill it)."""
        client = self.client
        return self.call(self._get_or_lease, client, key, lease, ttl_ms)

    def _get_or_lease(self, client, key, lease, ttl_ms):
        try:
            return client.execute_command("SET", key, lease, "NX", "GET", "PX", ttl_ms, get=True)
        except redis.exceptions.ResponseError as exc:
            kind = error_kind(exc)
            if kind not in ("oom", "readonly"):
                raise
            self._errors(kind).inc()
        raw = client.get(key)
        if raw is None:
            raise L2Unavailable(f"{kind}: {key} is absent and Redis refuses its lease")
        return raw

    def script(self, name: str, keys: list, args: list):
        """One EVALSHA of caching/lua/<name>.lua (redis-py reloads a script Redis lost)."""
        client = self.client
        return self.call(self._scripts[name], keys=keys, args=args, client=client)

    def script_for_write(self, name: str, keys: list, args: list):
        """script() for a write's invalidation, which an open breaker does not skip: a read
        that skips Redis loses a cache hit, a write whose invalidation skips it leaves every
        other process serving the old value until its replay (a host that heard Redis again
        keeps its breaker open up to BREAKER_RESET). See admit_write()."""
        client = self.client  # (registers the scripts on first use)
        probing = self.admit_write()
        try:
            return self._reported(self._scripts[name], (), {"keys": keys, "args": args, "client": client})
        finally:
            if probing:
                self.write_probe.release()

    def admit_write(self) -> bool:
        """script_for_write()'s first step (the async face's too): L2Unavailable when L2 is
        disabled, or the breaker is open and another write is trying Redis past it; True when
        this call is the one (it releases `write_probe` after its call). A success closes the
        breaker; while Redis is really unreachable a write pays at most one Redis timeout (0.25 s in
        newsite: REDIS_CONNECT_TIMEOUT, or REDIS_SOCKET_TIMEOUT on a pooled connection that died)."""
        if not self.enabled:
            raise L2Unavailable("L2 disabled (L2_ENABLED False)")
        if self.breaker.allow():
            return False
        if not self.write_probe.acquire(False):
            raise L2Unavailable("circuit breaker open (another write is trying Redis)")
        return True

    def run_script(self, script, keys: list, args: list):
        """One EVALSHA of an app's own script (caching.app_data.Script), registered on first use."""
        client = self.client
        registered = self._app_scripts.get(script)
        if registered is None:
            registered = self._app_scripts[script] = client.register_script(script.source)
        return self.call(registered, keys=keys, args=args, client=client)

    def execute(self, calls: list) -> list:
        """Run [(script name or "mget", keys, args)] in one round trip and return the replies.
        One script call: a plain EVALSHA. Several: one pipeline of EVALSHAs (not redis-py's
        pipeline scripts, which add a SCRIPT EXISTS round trip to every execute), reloading the
        scripts once if Redis lost them. Raises the first error reply."""
        if len(calls) == 1 and calls[0][0] != "mget":
            name, keys_, args = calls[0]
            return [self.script(name, keys_, args)]
        return self.call(self._pipelined, calls)

    def _pipelined(self, calls: list) -> list:
        client = self.client
        for _ in range(2):
            replies = queue_calls(client.pipeline(transaction=False), calls, self._scripts).execute(raise_on_error=False)
            if not scripts_lost(replies):
                break
            for script in self._scripts.values():  # Redis restarted or flushed its scripts
                client.script_load(script.script)
        return first_error_raised(replies)


# execute()'s pieces, shared with the asyncio half (caching/aio.py).

def queue_calls(pipe, calls: list, scripts: dict):
    """Queue [(script name or "mget", keys, args)] on `pipe` as EVALSHAs and MGETs; returns it."""
    for name, keys_, args in calls:
        if name == "mget":
            pipe.mget(keys_)
        else:
            pipe.evalsha(scripts[name].sha, len(keys_), *keys_, *args)
    return pipe


def scripts_lost(replies: list) -> bool:
    return any(isinstance(r, redis.exceptions.NoScriptError) for r in replies)


def first_error_raised(replies: list) -> list:
    """`replies`, or the first error reply raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
