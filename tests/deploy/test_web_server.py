"""The default web server as `make up`, systemd and docker-compose start it
(deploy/scripts/run-web.sh: granian, issue 17.5): two workers answer, the front answers cached
hits, /metrics sums both workers' counters (Prometheus multiprocess), SIGHUP replaces every
worker while readers keep reading, and a worker killed with -9 is respawned, its live gauges
dropped by the new worker.

What a reload may cost a client: a worker being replaced stops gracefully (its requests in flight
are answered), but a connection it had just accepted, or an idle keep-alive one, is closed without
an answer; HTTP/1.1 lets a client retry such an idempotent request (RFC 9112 9.3.1), and the edge
does (Varnish for reused connections, deploy/varnish/default.vcl's vcl_backend_error for new
ones). So: through Varnish no reader sees an error; directly, the only failure is "closed without
response", and the server never ran a request whose answer was lost."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.cdn.servers import Varnish
from tests.factories import make_article
from tests.support import WebServer, app_env, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def answering_pids(server: WebServer, tries: int = 40) -> set[int]:
    """The pids answering /health/cache/ (several requests: each worker answers some; a
    connection a killed worker had accepted fails, as with any server)."""
    pids = set()
    for _ in range(tries):
        try:
            pids.add(requests.get(server.url + "/health/cache/", timeout=10).json()["pid"])
        except requests.ConnectionError:
            continue
    return pids


@pytest.fixture
def web(tmp_path):
    env = app_env(WEB_PIDFILE=str(tmp_path / "web.pid"))
    server = WebServer(port=free_port(), workdir=tmp_path, env=env, workers=2)
    try:
        server.wait_ready(60)
        yield server
    finally:
        server.stop()


def responses_total(server: WebServer, endpoint: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "newsite_http_responses_total" and s.labels.get("endpoint") == endpoint)


class Reader:
    """GETs `url` in a loop until stop(), on one keep-alive connection or (keep_alive=False) a new
    one each time; counts statuses and transport errors."""

    def __init__(self, url: str, *, keep_alive: bool = True, headers: dict | None = None):
        self.url, self.keep_alive, self.headers = url, keep_alive, headers or {}
        self.counts, self._stop = Counter(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self._stop.is_set():
            try:
                if self.keep_alive:
                    self.counts[session.get(self.url, timeout=15, headers=self.headers).status_code] += 1
                else:
                    self.counts[requests.get(self.url, timeout=15,
                                             headers={**self.headers, "Connection": "close"}).status_code] += 1
            except requests.RequestException as exc:
                # urllib3's "Connection aborted.": the connection closed (or reset) before a whole
                # status line; a refused connection reads otherwise. Whether the request ran is
                # the count check's to say.
                self.counts["unanswered" if "Connection aborted." in str(exc) else f"error:{exc!r}"[:200]] += 1
                session = requests.Session()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "a reader did not stop"


def test_granian_serves_counts_reloads_and_respawns(web):
    assert "granian" in Path(f"/proc/{web.proc.pid}/cmdline").read_text(errors="replace")
    assert int((web.log.parent / "web.pid").read_text()) == web.proc.pid
    article = make_article(title="Served by granian")
    path = f"/api/articles/{article.pk}/"
    answers = [requests.get(web.url + path, timeout=10) for _ in range(20)]
    assert {r.status_code for r in answers} == {200} and answers[-1].json()["title"] == "Served by granian"
    assert {r.headers["X-Cache"] for r in answers[-5:]} <= {"HIT-L1", "HIT-L2"}

    # Prometheus multiprocess: /metrics sums the counters of both workers.
    first = answering_pids(web)
    assert len(first) == 2, first
    before = responses_total(web, "api-categories")
    for _ in range(60):
        assert requests.get(web.url + "/api/categories/", timeout=10).status_code == 200
    assert responses_total(web, "api-categories") - before == 60

    # SIGHUP: every worker replaced, one by one, while readers keep reading: through Varnish (an
    # Authorization header makes it pass, so every request reaches a worker; the app ignores a
    # scheme it does not know) and directly, on keep-alive and new connections.
    edge = Varnish(web.port)
    try:
        edge.start()
        counted = responses_total(web, "api-categories")
        assert counted == before + 60
        readers = [Reader(edge.url + "/api/categories/", headers={"Authorization": "Bearer edge-reader"}),
                   Reader(web.url + "/api/categories/"), Reader(web.url + "/api/categories/", keep_alive=False)]
        with contextlib.ExitStack() as running:
            for reader in readers:
                running.enter_context(reader)
            os.kill(web.proc.pid, signal.SIGHUP)
            assert wait_until(lambda: not (answering_pids(web, 10) & first) and len(answering_pids(web, 10)) == 2, 90,
                              interval=0.5), web.log.read_text(errors="replace")[-3000:]
        reloaded = time.monotonic()
    finally:
        edge.close()
    through_edge, *direct = (reader.counts for reader in readers)
    assert through_edge[200] > 0 and set(through_edge) == {200}, through_edge
    for counts in direct:
        assert counts[200] > 0 and set(counts) <= {200, "unanswered"}, counts
    # Nothing ran whose answer was lost (and the replaced workers' counts are kept).
    assert responses_total(web, "api-categories") == counted + sum(reader.counts[200] for reader in readers)

    # kill -9 of a worker: respawned; the new worker drops the dead one's live gauges.
    second = answering_pids(web)
    victim = min(second)
    # granian takes a worker dying within 5.5 s of its (re)spawn for a crash loop and exits.
    time.sleep(max(0.0, 6.0 - (time.monotonic() - reloaded)))
    if not (web.metrics_dir / f"gauge_livemax_{victim}.db").exists():  # as a worker's breaker gauge leaves it
        MmapedDict(str(web.metrics_dir / f"gauge_livemax_{victim}.db")).close()
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(answering_pids(web, 10) - {victim}) == 2, 60, interval=0.5), \
        web.log.read_text(errors="replace")[-3000:]
    assert wait_until(lambda: not (web.metrics_dir / f"gauge_livemax_{victim}.db").exists(), 30)
    assert requests.get(web.url + "/metrics", timeout=10).status_code == 200


def test_asgi_interface_serves_a_page_a_json_detail_and_a_304(tmp_path):
    """WEB_INTERFACE=asgi: run-web.sh starts granian on newsite.asgi; the ASGI front answers the
    cached hits with the same headers (X-Cache, ETag, Age, X-Request-ID) and the 304, Django's
    ASGI handler the misses; /health/cache/ reports the front on."""
    server = WebServer(port=free_port(), workdir=tmp_path, workers=1,
                       env=app_env(WEB_PIDFILE=str(tmp_path / "web.pid"), WEB_INTERFACE="asgi"))
    try:
        server.wait_ready(60)
        cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_text(errors="replace").split("\0")
        assert "newsite.asgi:application" in cmdline and "asgi" in cmdline, cmdline
        article = make_article(title="Served over ASGI")
        for path, content_type in ((f"/api/articles/{article.pk}/", "application/json"),
                                   (f"/articles/{article.slug}/", "text/html")):
            first = requests.get(server.url + path, timeout=10)
            assert first.status_code == 200 and first.headers["Content-Type"].startswith(content_type), path
            assert first.headers["X-Cache"] in {"MISS", "HIT-L2"}, path
            again = requests.get(server.url + path, timeout=10)
            assert again.status_code == 200 and again.headers["X-Cache"] == "HIT-L1", path
            assert again.content == first.content and again.headers["ETag"] == first.headers["ETag"], path
            for name in ("Age", "X-Request-ID", "Cache-Control", "X-Content-Type-Options", "Content-Length"):
                assert name in again.headers, (path, name)
            not_modified = requests.get(server.url + path, headers={"If-None-Match": again.headers["ETag"]}, timeout=10)
            assert not_modified.status_code == 304 and not_modified.content == b"", path
            assert not_modified.headers["X-Cache"] == "HIT-L1" and not_modified.headers["ETag"] == again.headers["ETag"]
            with requests.Session() as session:  # HEAD: the headers, no body (the connection stays usable)
                head = session.head(server.url + path, timeout=10)
                assert head.status_code == 200 and head.content == b"", path
                assert head.headers["Content-Length"] == again.headers["Content-Length"], path
                assert session.get(server.url + path, timeout=10).content == again.content, path
        assert requests.get(server.url + f"/api/articles/{article.pk}/", timeout=10).json()["title"] == "Served over ASGI"
        health = requests.get(server.url + "/health/cache/", timeout=10).json()
        front = health["wsgi_front"]  # the name predates ASGI: this process's front
        assert front.get("enabled") is True and front.get("served", 0) >= 4, health
    finally:
        server.stop()
