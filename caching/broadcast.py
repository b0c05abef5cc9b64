"""L1 coherence across processes: one pub/sub subscriber thread per process.

invalidate.lua publishes "<sequence>\n<tag>\n<tag>..." on `keys.invalidation_channel()` (the
channel name carries the key prefix: pub/sub ignores db indexes). Every process applies it to its
own L1. The subscription runs on a dedicated connection named `keys.subscriber_client_name(pid)`.

Whenever the subscription is (re)established - first start, redis-py's silent reconnect, or our
own after an error - the whole L1 is cleared, because invalidations may have been missed
meanwhile; on a connection error it is cleared at once too. The thread is a daemon started on the
first L1 fill, and is not inherited by forked children (they start their own).

Two more message kinds serve the Django cache backend (caching/backends/), which gives each
Subscriber its own channel, connection factory and client name:
  "k<sequence>\n<JSON array of exact L1 keys>"  -> L1.invalidate_keys (a set/delete/incr/touch)
  "c<sequence>"                                  -> L1.clear() (a cache.clear() somewhere)
invalidate.lua's messages start with a digit, so the formats cannot be confused.
"""

from __future__ import annotations

import json
import logging
import os
import threading

import redis
from django_redis import get_redis_connection

from caching import keys, metrics
from caching.l2 import REDIS_ERRORS

logger = logging.getLogger(__name__)


KEYS_MESSAGE = "k"
CLEAR_MESSAGE = "c"


class Subscriber:
    def __init__(self, l1, *, channel: str | None = None, connect=None, client_name: str | None = None):
        self.l1 = l1
        self.pid = os.getpid()
        # Defaults: the tiered cache's own channel on the CACHES["default"] connection.
        self.channel = channel
        self._connect = connect
        self.client_name = client_name
        self.subscribed = threading.Event()
        self.messages = 0
        self.drops = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="caching-l1-subscriber", daemon=True)
        self._pubsub = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if timeout and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        return self.subscribed.wait(timeout)

    def _client(self) -> redis.Redis:
        base = self._connect() if self._connect is not None else get_redis_connection("default")
        pool = base.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs["client_name"] = self.client_name or keys.subscriber_client_name(self.pid)
        own_pool = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=2, **kwargs)
        return redis.Redis(connection_pool=own_pool)

    def _run(self) -> None:
        channel = self.channel or keys.invalidation_channel()
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = None
            try:
                client = self._client()
                pubsub = client.pubsub()
                pubsub.subscribe(channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "message":
                        self._apply(message["data"])
                    elif kind == "subscribe":
                        # New or re-established subscription: whatever was published while we
                        # were not listening is lost, so nothing in L1 can be trusted.
                        self.l1.clear()
                        metrics.count_invalidation("l1_flush")
                        self.subscribed.set()
                        backoff = 0.05
            except REDIS_ERRORS as exc:
                if self.subscribed.is_set():
                    # Clear once per loss (not per failed retry: L1 keeps serving fresh fills
                    # while Redis is down); the resubscription clears again.
                    self.drops += 1
                    logger.warning("L1 invalidation subscription lost (%s): L1 cleared, resubscribing", exc)
                    self.subscribed.clear()
                    self.l1.clear()
                    metrics.count_invalidation("l1_flush")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except REDIS_ERRORS:
                        pass  # the connection is already gone; nothing to close cleanly
                    pubsub.connection_pool.disconnect()
        self.subscribed.clear()

    def _apply(self, data: bytes) -> None:
        text = data.decode()
        kind = text[:1]
        if kind == KEYS_MESSAGE:
            head, _, rest = text[1:].partition("\n")
            self.l1.invalidate_keys(int(head), json.loads(rest))
            self.messages += 1
            metrics.count_invalidation("l1_message")
            return
        if kind == CLEAR_MESSAGE:
            self.l1.clear()
            self.messages += 1
            metrics.count_invalidation("l1_flush")
            return
        head, _, rest = text.partition("\n")
        tags = rest.split("\n") if rest else []
        self.l1.invalidate(int(head), tags)
        self.messages += 1
        metrics.count_invalidation("l1_message")
