"""A WSGI-level test client: requests go through a WSGI application (the front of newsite/front.py,
or Django's plain WSGIHandler), in this process, so the test database and pytest-django's query
assertions apply. Django's test Client cannot reach the front: it calls the handler below it.

What a WSGI server adds (Date, Server, Connection) is not here; everything the application
sends is, as a list of (name, value) pairs."""

from __future__ import annotations

import io
import json
from collections import Counter
from http.cookies import SimpleCookie
from urllib.parse import unquote_to_bytes, urlsplit

from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from caching.front import ResponseFront
from newsite.front import wrap


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


def front_client() -> WSGIClient:
    """Requests through the WSGI front over Django's handler, built from the current settings."""
    app = wrap(WSGIHandler())
    assert isinstance(app, ResponseFront), f"the WSGI front is off: {getattr(app, 'front_off_reason', '?')}"
    return WSGIClient(app)


def django_wsgi_client() -> WSGIClient:
    """Requests through Django's WSGI handler alone (what the front falls through to)."""
    return WSGIClient(WSGIHandler())
