"""The front under a real server, 2 workers each with its own L1 - WSGI (gunicorn, newsite.wsgi)
and ASGI (granian, newsite.asgi: run-web.sh with WEB_INTERFACE=asgi): readers race a writer;
once a write has returned, no read that starts afterwards shows an older version - the front
reads the same L1 the broadcast (acknowledged before the write returns) cleans."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from articles import services
from tests.factories import make_article
from tests.support import Gunicorn, WebServer, app_env, free_port, require_postgresql, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROBE = {"X-Canary-Probe": "1"}  # asks for X-Served-By: the pid of the worker that answered
READERS = 4
EDITS = 20


@pytest.fixture(params=["wsgi", "asgi"])
def server(tmp_path, request):
    require_postgresql()
    if request.param == "asgi":
        app = WebServer(port=free_port(), workdir=tmp_path, env=app_env(WEB_INTERFACE="asgi"), workers=2,
                        ready_path="/api/categories/")
    else:
        app = Gunicorn(port=free_port(), workdir=tmp_path, env=app_env(), workers=2, ready_path="/api/categories/")
    try:
        app.wait_ready()
        yield app
    finally:
        app.stop()


def fronts_by_pid(server) -> dict:
    """The wsgi_front section of /health/cache/ of each worker (new connections spread them)."""
    seen = {}

    def both():
        body = requests.get(server.url + "/health/cache/", timeout=5).json()
        seen[body["pid"]] = body["wsgi_front"]
        return len(seen) == 2

    assert wait_until(both, 15, 0.01), seen
    return seen


def test_readers_through_the_front_never_see_an_old_version_after_the_write_returned(server):
    article = make_article(title="front v1")
    url = f"{server.url}/api/articles/{article.id}/"
    warmed = set()

    def every_worker_hits():
        response = requests.get(url, headers=PROBE, timeout=5)
        if response.headers["X-Cache"] == "HIT-L1":
            warmed.add(response.headers["X-Served-By"])
        return len(warmed) == 2

    assert wait_until(every_worker_hits, 20, 0.01), warmed

    reads: list[tuple[float, int, str, str]] = []  # (started, version, X-Cache, pid)
    writes: list[tuple[float, int]] = []  # (returned, version)
    stop = threading.Event()

    def reader(keep_alive: bool):
        # Half the readers open a connection per request: granian keeps a keep-alive connection
        # on the worker that accepted it, and 4 of them all landed on one worker (gunicorn's
        # sync workers close every connection).
        session = requests.Session() if keep_alive else requests
        while not stop.is_set():
            started = time.monotonic()
            response = session.get(url, headers=PROBE, timeout=10)
            assert response.status_code == 200
            reads.append((started, response.json()["version"], response.headers["X-Cache"],
                          response.headers["X-Served-By"]))

    threads = [threading.Thread(target=reader, args=(n % 2 == 0,)) for n in range(READERS)]
    for thread in threads:
        thread.start()
    try:
        for n in range(EDITS):
            time.sleep(0.05)
            services.article_update(article=article, data={"title": f"front v{n + 2}"})  # autocommit
            article.refresh_from_db()
            writes.append((time.monotonic(), article.version))
        time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)

    stale = []
    for started, version, x_cache, pid in reads:
        newest = max((v for returned, v in writes if returned <= started), default=1)
        if version < newest:
            stale.append((started, version, newest, x_cache, pid))
    assert not stale, stale[:10]
    l1_hits = [r for r in reads if r[2] == "HIT-L1"]
    assert len(l1_hits) > 50 and len({r[3] for r in l1_hits}) == 2, (len(reads), len(l1_hits))
    assert max(r[1] for r in reads) == writes[-1][1]
    # Those L1 hits were the front's: every worker has it on and answered from it.
    fronts = fronts_by_pid(server)
    assert all(f["enabled"] and f["served"] > 0 for f in fronts.values()), fronts
