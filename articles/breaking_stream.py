"""The breaking box as server-sent events: a standalone ASGI app for one path (PATH), the
alternative design measured against polling the edge (docs/breaking-box.md; polling is the
default, this is not mounted by newsite/urls.py).

Each process keeps one `Hub` per event loop: one redis.asyncio subscription to the invalidation
bus (the channel caching/broadcast.py applies to L1: caching.keys.channel), and on a message that
names the `breaking` tag (or empties L1, or on every (re)subscription, when messages may have been
missed) one read of selectors.breaking_news() from the database - after the write's commit, which
is when its invalidation is published - and, if the box changed, one wake-up of every open stream.
A stream sends the current box on connect (unless its Last-Event-ID is the current one), each
change, and a comment line every HEARTBEAT_SECONDS (an idle connection through the edge or a proxy
stays open). The event's data is the JSON of GET /api/breaking-news/, so the page's script draws
it with the polling design's code. A slow stream skips to the newest box, never queues.

Cost: one asyncio task and an open socket per reader at the origin, and whatever the edge keeps per
piped connection (Varnish: a worker thread each); the measurements are in
bench/results/2026-12-07-breaking-box.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from asgiref.sync import sync_to_async
from django.db import connections

from caching import aio, broadcast, keys
from caching import engine as engines

from . import selectors
from . import tags as T

logger = logging.getLogger(__name__)

PATH = "/api/breaking-news/stream/"
HEARTBEAT_SECONDS = 15.0
RETRY_MS = 3000  # EventSource's reconnection delay, sent with the first event
RESUBSCRIBE_BACKOFF = (0.1, 5.0)  # first and longest wait before subscribing again after an error

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    # Personal to the connection: nothing may keep it (the edge pipes it: deploy/varnish).
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


def _load_box() -> bytes:
    """The box's JSON, read from the database in an executor thread. Its connections are closed
    after the read: it runs once per breaking invalidation and process, and a thread of the pool
    must not hold a connection between them."""
    try:
        return json.dumps(selectors.breaking_news(), separators=(",", ":"), sort_keys=True).encode()
    finally:
        connections.close_all()  # this thread's connections only (they are per thread)


def _event(box_id: str, body: bytes, *, first: bool) -> bytes:
    retry = f"retry: {RETRY_MS}\n".encode() if first else b""
    return retry + b"id: " + box_id.encode() + b"\nevent: breaking\ndata: " + body + b"\n\n"


class Hub:
    """The box of one event loop and its readers' wake-up."""

    def __init__(self):
        self.box_id = ""
        self.body = b""
        self.ready = asyncio.Event()  # set once the first box is loaded
        self.changed = asyncio.Event()  # replaced by a new Event after each change
        self.streams = 0
        self.loads = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="breaking-hub")

    async def refresh(self) -> None:
        body = await sync_to_async(_load_box, thread_sensitive=False)()
        self.loads += 1
        box_id = hashlib.blake2b(body, digest_size=8).hexdigest()
        if box_id != self.box_id:
            self.box_id, self.body = box_id, body
            changed, self.changed = self.changed, asyncio.Event()
            changed.set()
        self.ready.set()

    async def _run(self) -> None:
        engine = engines.default()
        channel = keys.channel(engine.namespace, engine.l2.db)
        backoff = RESUBSCRIBE_BACKOFF[0]
        while True:
            pubsub = None
            try:
                pubsub = aio.async_client(engine.l2.client).pubsub()
                await pubsub.subscribe(channel)
                while True:
                    message = await pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        await self.refresh()  # anything published while we were away
                        backoff = RESUBSCRIBE_BACKOFF[0]
                    elif message["type"] == "message" and self._names_breaking(message["data"]):
                        await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis or database down: streams keep the last box
                logger.warning("breaking stream: subscription lost, retrying in %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESUBSCRIBE_BACKOFF[1])
            finally:
                if pubsub is not None:
                    await pubsub.aclose()

    @staticmethod
    def _names_breaking(data: bytes) -> bool:
        try:
            message = broadcast.parse(data)
        except ValueError:
            return False
        return message.kind == broadcast.CLEAR or T.breaking_tag() in message.items


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """This event loop's hub, started on first use (nothing connects at import)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
        found.start()
    return found


async def _error(send, status: int, error: str, detail: str, extra=()) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"cache-control", b"no-store"), *extra,
    ]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    """ASGI app for GET PATH: the breaking box as an event stream until the client leaves."""
    if scope["type"] != "http":
        return
    if scope["path"] != PATH:
        await _error(send, 404, "not_found", "No such stream.")
        return
    if scope["method"] not in ("GET", "HEAD"):
        await _error(send, 405, "method_not_allowed", "Use GET.", [(b"allow", b"GET, HEAD")])
        return
    box = hub()
    try:
        await asyncio.wait_for(box.ready.wait(), timeout=HEARTBEAT_SECONDS)
    except TimeoutError:
        await _error(send, 503, "unavailable", "The breaking box is not available yet.", [(b"retry-after", b"5")])
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    if scope["method"] == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return
    last_seen = dict(scope.get("headers") or ()).get(b"last-event-id", b"").decode("latin-1")
    left = asyncio.get_running_loop().create_task(_disconnected(receive))
    box.streams += 1
    try:
        sent = ""
        first = True
        while not left.done():
            box_id, body, changed = box.box_id, box.body, box.changed
            if box_id != sent and box_id != last_seen:
                await send({"type": "http.response.body", "body": _event(box_id, body, first=first),
                            "more_body": True})
                first = False
            sent = last_seen = box_id
            waiter = asyncio.ensure_future(changed.wait())
            done, _ = await asyncio.wait({waiter, left}, timeout=HEARTBEAT_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not done:
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
    except (OSError, RuntimeError):
        pass  # the client went away mid-send (the server's error for a closed connection)
    finally:
        box.streams -= 1
        left.cancel()


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
