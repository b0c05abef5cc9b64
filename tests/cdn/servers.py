"""Test servers for tests/cdn: a tiny origin, a fake CDN API, and a real varnishd.

All bind 127.0.0.1 on free ports and are stopped by the fixtures that start them.
"""

import contextlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from tests.support import REPO, Varnishd, free_ports

DEFAULT_VCL = REPO / "deploy" / "varnish" / "default.vcl"


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args):
        pass


class Server:
    """A ThreadingHTTPServer in a daemon thread; stop() closes it."""

    def __init__(self, handler_cls):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.port = self.httpd.server_address[1]
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- The origin: pages whose body, tags and Cache-Control the test sets ----------------------


class _OriginHandler(_Quiet):
    def do_GET(self):
        origin = self.server.owner
        with origin.lock:
            origin.requests.append(self.path)
            origin.headers_seen.append((self.path, dict(self.headers)))
            status, page = origin.lookup(self.path)
            held = origin.held.pop(self.path, None)
        if held is not None:  # built now, sent when the test releases it: a slow fetch in flight
            held.arrived.set()
            held.released.wait(HOLD_LIMIT)
        body = page["body"].encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if page["cache_control"] is not None:
            self.send_header("Cache-Control", page["cache_control"])
        if page["tags"]:
            self.send_header("Surrogate-Key", " ".join(page["tags"]))
            self.send_header("Cache-Tag", ",".join(page["tags"]))
        for name, value in page.get("headers", {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


HOLD_LIMIT = 15.0  # seconds a held answer waits for its release at most


class Held:
    """One request held by the origin: `arrived` once it came (its answer is built then),
    answered on release()."""

    def __init__(self):
        self.arrived = threading.Event()
        self.released = threading.Event()

    def release(self):
        self.released.set()


class Origin(Server):
    """Serves pages set with origin.page(path, body, tags); counts requests per path.
    origin.hold(path): the next GET of path is built at once and answered only when released."""

    PUBLIC = "public, max-age=60, s-maxage=300, stale-while-revalidate=30, stale-if-error=600"

    def __init__(self):
        self.lock = threading.Lock()
        self.pages = {}
        self.requests = []
        self.headers_seen: list[tuple[str, dict]] = []  # (path, request headers) of each request
        self.failing = False
        self.held: dict[str, Held] = {}
        super().__init__(_OriginHandler)

    def hold(self, path) -> Held:
        with self.lock:
            self.held[path] = Held()
            return self.held[path]

    def stop(self):
        with self.lock:
            for held in self.held.values():
                held.release()
        super().stop()

    def page(self, path, body, tags=(), cache_control=PUBLIC, headers=None, status=200):
        with self.lock:
            self.pages[path] = {
                "status": status,
                "body": body,
                "tags": list(tags),
                "cache_control": cache_control,
                "headers": headers or {},
            }

    def lookup(self, path):
        if self.failing:
            return 500, {"body": "origin down", "tags": [], "cache_control": "no-store"}
        page = self.pages.get(path)
        if page is None:
            return 404, {"body": "not found", "tags": [], "cache_control": "no-store"}
        return page.get("status", 200), page

    def hits(self, path):
        with self.lock:
            return self.requests.count(path)


# --- A fake CDN API: records requests, answers from a script of statuses ---------------------


class _ApiHandler(_Quiet):
    def do_POST(self):
        api = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with api.lock:
            status = api.script.pop(0) if api.script else 200
            api.calls.append(
                {
                    "method": "POST",
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(raw) if raw else None,
                    "status": status,
                    "at": time.monotonic(),
                }
            )
        body = json.dumps({"success": status == 200, "status": "ok" if status == 200 else "error"}).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", api.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeApi(Server):
    """calls: every request; script: statuses to answer in order (then 200)."""

    def __init__(self, script=(), retry_after="1"):
        self.lock = threading.Lock()
        self.calls = []
        self.script = list(script)
        self.retry_after = retry_after
        super().__init__(_ApiHandler)

    def accepted(self):
        with self.lock:
            return [call for call in self.calls if call["status"] == 200]


# --- A real varnishd running deploy/varnish/default.vcl ----------------------------------------


def render_vcl(backend_port: int, *, purgers=None, urlconf: str | None = None) -> str:
    """default.vcl with the backend port (and optionally the purge ACL) replaced; with `urlconf`,
    its public routes rendered from that URLconf instead of the project's (caching/edge_vcl.py)."""
    vcl = DEFAULT_VCL.read_text()
    if urlconf is not None:
        from caching.edge_vcl import render_vcl as render_public_routes

        vcl = render_public_routes(vcl, urlconf)
    vcl, n = re.subn(r'(\n    \.port = )"8000";', rf'\1"{backend_port}";', vcl)
    assert n == 1, "default.vcl: backend port line not found"
    if purgers is not None:
        entries = "".join(f'    "{address}";\n' for address in purgers)
        vcl, n = re.subn(r"acl purgers \{\n(.*?)\}", "acl purgers {\n" + entries + "}", vcl, flags=re.S)
        assert n == 1, "default.vcl: acl purgers not found"
    return vcl


class Varnish(Varnishd):
    """varnishd -F on a free port in front of 127.0.0.1:backend_port; stop()/start() keep the port."""

    def __init__(self, backend_port: int, *, purgers=None, urlconf: str | None = None):
        port, admin_port = free_ports(2)
        super().__init__(port=port, admin_port=admin_port,
                         vcl=render_vcl(backend_port, purgers=purgers, urlconf=urlconf))

    def get(self, path, **kwargs):
        return requests.get(self.url + path, timeout=10, **kwargs)


# --- A TCP relay: the path to one edge's purge port, which the test can break ------------------


class Relay:
    """127.0.0.1:port -> 127.0.0.1:target. down(): the port refuses connections; hang(): it
    accepts them and never answers; up(): it forwards both ways. close() at the end."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.mode = "down"
        self.accepted = 0
        self._lock = threading.Lock()
        self._listener = None
        self._open: list = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def up(self):
        self._listen("up")

    def hang(self):
        self._listen("hang")

    def down(self):
        with self._lock:
            self.mode = "down"
            listener, self._listener = self._listener, None
            conns, self._open = self._open, []
        for sock in ([listener] if listener else []) + conns:
            self._close(sock)

    close = down

    def _listen(self, mode):
        self.down()
        listener = socket.create_server(("127.0.0.1", self.port))
        with self._lock:
            self.mode, self._listener = mode, listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:
                    self._close(client)
                    return
                self.accepted += 1
                self._open.append(client)
                mode = self.mode
            if mode == "up":
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                with self._lock:
                    self._open.append(upstream)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(dst)

    @staticmethod
    def _close(sock):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
