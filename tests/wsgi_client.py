"""A WSGI-level test client: requests go through a WSGI application (the front of newsite/front.py,
or Django's plain WSGIHandler), in this process, so the test database and pytest-django's query
assertions apply. Django's test Client cannot reach the front: it calls the handler below it.
ASGIClient does the same through an ASGI application (the ASGI front over Django's ASGIHandler),
run with asgiref's async_to_sync from the test's thread: Django's sync parts run in that thread,
on the test's database connection.

What a WSGI server adds (Date, Server, Connection) is not here; everything the application
sends is, as a list of (name, value) pairs."""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from http.client import responses
from http.cookies import SimpleCookie
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from caching import aio
from caching.front import ResponseFront
from newsite.front import wrap, wrap_asgi


class WSGIResponse:
    def __init__(self, status: str, headers: list[tuple[str, str]], content: bytes):
        self.status_code = int(status.split(" ", 1)[0])
        self.status = status
        self.header_list = headers
        self.content = content

    def get(self, name: str, default=None):
        name = name.lower()
        for key, value in self.header_list:
            if key.lower() == name:
                return value
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def has_header(self, name: str) -> bool:
        return name in self

    def json(self):
        return json.loads(self.content)

    def header_set(self, *, ignore_values=("date", "x-request-id", "age")) -> Counter:
        """The headers as a multiset of (lowercased name, value); the values of `ignore_values`
        (inherently different per response) replaced by "*"."""
        return Counter((k.lower(), "*" if k.lower() in ignore_values else v) for k, v in self.header_list)


class WSGIClient:
    """get()/head()/request() like Django's Client (extra WSGI environ keys as keyword args)."""

    def __init__(self, app):
        self.app = app
        self.cookies = SimpleCookie()

    @property
    def front(self) -> ResponseFront | None:
        return self.app if isinstance(self.app, ResponseFront) else None

    def force_login(self, user) -> None:
        django_client = Client()
        django_client.force_login(user)
        self.cookies.update(django_client.cookies)

    def request(self, method: str, path: str, **extra) -> WSGIResponse:
        url = urlsplit(path)
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(url.path).decode("iso-8859-1"),
            "QUERY_STRING": url.query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "testserver",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{m.key}={m.coded_value}" for m in self.cookies.values())
        environ.update(extra)
        started = {}

        def start_response(status, headers, exc_info=None):
            started["status"], started["headers"] = status, list(headers)

        # As Django's test Client: the request signals must not close the test's connection.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        return WSGIResponse(started["status"], started["headers"], b"" if method == "HEAD" else body)

    def get(self, path: str, **extra) -> WSGIResponse:
        return self.request("GET", path, **extra)

    def head(self, path: str, **extra) -> WSGIResponse:
        return self.request("HEAD", path, **extra)


class ASGIClient(WSGIClient):
    """WSGIClient's interface over an ASGI application: the environ keys of `extra` become the
    scope's headers (HTTP_*), scheme (wsgi.url_scheme) and client (REMOTE_ADDR)."""

    def request(self, method: str, path: str, **extra) -> WSGIResponse:
        url = urlsplit(path)
        headers = {"host": "testserver"}
        if self.cookies:
            headers["cookie"] = "; ".join(f"{m.key}={m.coded_value}" for m in self.cookies.values())
        scheme, client = "http", ("127.0.0.1", 50000)
        for key, value in extra.items():
            if key.startswith("HTTP_"):
                headers[key[5:].lower().replace("_", "-")] = value
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                headers[key.lower().replace("_", "-")] = value
            elif key == "wsgi.url_scheme":
                scheme = value
            elif key == "REMOTE_ADDR":
                client = (value, 50000)
            else:
                raise ValueError(f"ASGIClient: no scope twin for {key}")
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": method, "scheme": scheme, "path": unquote(url.path), "raw_path": url.path.encode(),
            "query_string": url.query.encode("latin-1"), "root_path": "",
            "headers": [(name.encode("latin-1"), str(value).encode("latin-1")) for name, value in headers.items()],
            "client": client, "server": ("testserver", 80),
        }
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            messages = async_to_sync(self._run)(scope)
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        status = f"{start['status']} {responses.get(start['status'], 'Unknown')}"
        header_list = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        return WSGIResponse(status, header_list, b"" if method == "HEAD" else body)

    async def _run(self, scope) -> list:
        sent, asked = [], []

        async def receive():
            if not asked:
                asked.append(1)
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Future()  # the client never disconnects (Django listens for it)

        async def send(message):
            sent.append(message)

        try:
            await self.app(scope, receive, send)
        finally:
            await aio.aclose()  # this loop's redis.asyncio clients (a loop per request here)
        return sent


def front_client(interface: str = "wsgi") -> WSGIClient:
    """Requests through the front over Django's handler, built from the current settings:
    the WSGI front over WSGIHandler, or (interface "asgi") the ASGI front over ASGIHandler."""
    if interface == "asgi":
        app = wrap_asgi(ASGIHandler())
        assert isinstance(app, ResponseFront), f"the ASGI front is off: {getattr(app, 'front_off_reason', '?')}"
        return ASGIClient(app)
    app = wrap(WSGIHandler())
    assert isinstance(app, ResponseFront), f"the WSGI front is off: {getattr(app, 'front_off_reason', '?')}"
    return WSGIClient(app)


def django_asgi_client() -> ASGIClient:
    """Requests through Django's ASGI handler alone (what the ASGI front falls through to)."""
    return ASGIClient(ASGIHandler())


def django_wsgi_client() -> WSGIClient:
    """Requests through Django's WSGI handler alone (what the front falls through to)."""
    return WSGIClient(WSGIHandler())
