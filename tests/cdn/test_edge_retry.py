"""deploy/varnish/default.vcl retries, once, a GET or HEAD whose backend connection was closed
without an answer within 0.5 s (what a web server's worker does to the connections it had just
accepted when a graceful reload replaces it): the reader gets the answer, not a 503. Writes and
slow failures are not retried. The backend is a raw TCP server that closes the connections it is
told to before answering, so every case is deterministic."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from tests.cdn.servers import Varnish

pytestmark = pytest.mark.slow

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class ClosingBackend:
    """Accepts connections on a free port; the first `close_first` are closed unanswered (after
    `delay` seconds), every later one is answered 200 "ok". `connections` counts them."""

    def __init__(self, close_first: int, delay: float = 0.0):
        self.close_first, self.delay = close_first, delay
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if self.connections <= self.close_first:
                    time.sleep(self.delay)
                    continue  # closed, the request unread: no answer at all
                conn.recv(65536)
                conn.sendall(ANSWER)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def edge_on():
    started = []

    def start(backend: ClosingBackend) -> Varnish:
        edge = Varnish(backend.port)
        started.append((edge, backend))
        return edge.start()

    yield start
    for edge, backend in started:
        edge.close()
        backend.close()


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/schema/"), ("HEAD", "/api/schema/"),
                                            ("GET", "/api/articles/")])  # passed; a public route
def test_a_read_closed_unanswered_is_tried_once_more(edge_on, method, path):
    backend = ClosingBackend(close_first=1)
    edge = edge_on(backend)
    answer = requests.request(method, edge.url + path, timeout=10)
    assert answer.status_code == 200
    assert backend.connections == 2


def test_a_write_is_not_retried(edge_on):
    backend = ClosingBackend(close_first=1)
    edge = edge_on(backend)
    assert requests.post(edge.url + "/api/articles/", data=b"{}", timeout=10).status_code == 503
    assert backend.connections == 1


def test_only_one_retry(edge_on):
    backend = ClosingBackend(close_first=10)
    edge = edge_on(backend)
    assert requests.get(edge.url + "/api/schema/", timeout=10).status_code == 503
    assert backend.connections == 2


def test_a_slow_failure_is_not_retried(edge_on):
    backend = ClosingBackend(close_first=1, delay=0.8)
    edge = edge_on(backend)
    assert requests.get(edge.url + "/api/schema/", timeout=10).status_code == 503
    assert backend.connections == 1
