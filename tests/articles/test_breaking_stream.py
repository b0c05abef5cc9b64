"""The breaking box's event stream (articles/breaking_stream.py, the measured alternative to
polling: docs/breaking-box.md), driven as an ASGI server would drive it, on the real invalidation
bus (Redis pub/sub) and database: a publish committed by another thread reaches an open stream;
a reconnect with the current Last-Event-ID gets nothing twice; bad requests are JSON 4xx."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.db import connections

from articles import breaking_stream
from tests.factories import make_article

pytestmark = pytest.mark.django_db(transaction=True)


def scope(method: str = "GET", path: str = breaking_stream.PATH, headers=()):
    return {"type": "http", "method": method, "path": path, "headers": list(headers)}


class Stream:
    """One client of the app: what it was sent, and a way to leave."""

    def __init__(self, **kwargs):
        self.messages: list[dict] = []
        self.left = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(
            breaking_stream.app(scope(**kwargs), self.receive, self.send))

    async def receive(self):
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message):
        self.messages.append(message)

    def events(self) -> list[dict]:
        """The `breaking` events received: {"id", "data"}."""
        text = b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body").decode()
        out = []
        for block in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if fields.get("event") == "breaking":
                out.append({"id": fields["id"], "data": json.loads(fields["data"])})
        return out

    async def until(self, predicate, timeout: float = 20.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return predicate(self)

    async def close(self):
        self.left.set()
        await asyncio.wait_for(self.task, timeout=10)


def publish_elsewhere(**fields) -> None:
    """make_article in a thread of the executor, its connection closed after (per thread)."""
    try:
        make_article(**fields)
    finally:
        connections.close_all()


def titles(event: dict) -> list[str]:
    return [item["title"] for item in event["data"]["results"]]


def test_a_publish_committed_elsewhere_reaches_an_open_stream():
    make_article(title="Storm warning", is_breaking=True)

    async def scenario():
        stream = Stream()
        assert await stream.until(lambda s: len(s.events()) == 1)
        start = stream.messages[0]
        assert start["status"] == 200
        assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
        assert dict(start["headers"])[b"cache-control"] == b"no-store"
        first = stream.events()[0]
        assert titles(first) == ["Storm warning"]

        # A reader that comes back with the box it has gets nothing until the box changes.
        again = Stream(headers=[(b"last-event-id", first["id"].encode())])
        await asyncio.sleep(0.5)
        assert again.events() == []

        # Another thread commits a breaking story: its invalidation goes out on the bus.
        await asyncio.to_thread(publish_elsewhere, title="Bridge closed", is_breaking=True)
        assert await stream.until(lambda s: len(s.events()) == 2)
        assert await again.until(lambda s: len(s.events()) == 1)
        assert titles(stream.events()[1]) == ["Bridge closed", "Storm warning"]
        assert again.events()[0] == stream.events()[1]
        # An edit that does not touch the box sends nothing.
        await asyncio.to_thread(publish_elsewhere, title="Council meets")
        await asyncio.sleep(1.0)
        assert len(stream.events()) == 2
        await stream.close()
        await again.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("method", "path", "status", "error"), [
    ("POST", breaking_stream.PATH, 405, "method_not_allowed"),
    ("GET", "/api/breaking-news/stream/x", 404, "not_found"),
])
def test_bad_requests_are_json_errors(method, path, status, error):
    async def scenario():
        stream = Stream(method=method, path=path)
        await asyncio.wait_for(stream.task, timeout=10)
        start, body = stream.messages
        assert start["status"] == status
        assert dict(start["headers"])[b"content-type"] == b"application/json"
        assert json.loads(body["body"])["error"] == error

    asyncio.run(scenario())
