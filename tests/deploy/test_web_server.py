"""The default web server as `make up`, systemd and docker-compose start it
(deploy/scripts/run-web.sh: granian, issue 17.5): two workers answer, the front answers cached
hits, /metrics sums both workers' counters (Prometheus multiprocess), SIGHUP replaces every
worker while a reader keeps reading (no request refused or failed), and a worker killed with -9
is respawned, its live gauges dropped by the new worker."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import make_article
from tests.support import REPO, app_env, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class WebServer:
    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.metrics = tmp_path / "prometheus"
        self.pidfile = tmp_path / "web.pid"
        self.log = tmp_path / "web.log"
        env = app_env(WEB_BIND=f"127.0.0.1:{self.port}", WEB_WORKERS="2", WEB_THREADS="2",
                      PROMETHEUS_MULTIPROC_DIR=str(self.metrics), WEB_PIDFILE=str(self.pidfile))
        env.pop("WEB_SERVER", None)
        self.proc = subprocess.Popen([str(REPO / "deploy" / "scripts" / "run-web.sh")], cwd=REPO, env=env,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
        try:
            return requests.get(self.url + "/health/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def worker_pids(self, tries: int = 40) -> set[int]:
        """The pids answering /health/cache/ (several requests: each worker answers some; a
        connection a killed worker had accepted fails, as with any server)."""
        pids = set()
        for _ in range(tries):
            try:
                pids.add(requests.get(self.url + "/health/cache/", timeout=10).json()["pid"])
            except requests.ConnectionError:
                continue
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def web(tmp_path):
    server = WebServer(tmp_path)
    try:
        assert wait_until(server.ready, 60), server.log.read_text(errors="replace")[-3000:]
        yield server
    finally:
        server.stop()


def responses_total(server: WebServer, endpoint: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "newsite_http_responses_total" and s.labels.get("endpoint") == endpoint)


class Reader:
    """GETs `url` in a loop until stop(); counts statuses and transport errors."""

    def __init__(self, url: str):
        self.url, self.counts, self._stop = url, Counter(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self._stop.is_set():
            try:
                self.counts[session.get(self.url, timeout=15).status_code] += 1
            except requests.RequestException as exc:
                self.counts[f"error:{type(exc).__name__}"] += 1
                session = requests.Session()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(20)


def test_granian_serves_counts_reloads_and_respawns(web):
    assert "granian" in Path(f"/proc/{web.proc.pid}/cmdline").read_text(errors="replace")
    assert int(web.pidfile.read_text()) == web.proc.pid
    article = make_article(title="Served by granian")
    path = f"/api/articles/{article.pk}/"
    answers = [requests.get(web.url + path, timeout=10) for _ in range(20)]
    assert {r.status_code for r in answers} == {200} and answers[-1].json()["title"] == "Served by granian"
    assert {r.headers["X-Cache"] for r in answers[-5:]} <= {"HIT-L1", "HIT-L2"}

    # Prometheus multiprocess: /metrics sums the counters of both workers.
    first = web.worker_pids()
    assert len(first) == 2, first
    before = responses_total(web, "api-categories")
    for _ in range(60):
        assert requests.get(web.url + "/api/categories/", timeout=10).status_code == 200
    assert responses_total(web, "api-categories") - before == 60

    # SIGHUP: every worker replaced, one by one, while a reader keeps reading.
    with Reader(web.url + "/api/categories/") as reader:
        os.kill(web.proc.pid, signal.SIGHUP)
        assert wait_until(lambda: not (web.worker_pids(10) & first) and len(web.worker_pids(10)) == 2, 90,
                          interval=0.5), web.log.read_text(errors="replace")[-3000:]
    assert reader.counts and set(reader.counts) == {200}, reader.counts
    counted = responses_total(web, "api-categories")
    assert counted >= before + 60 + reader.counts[200]  # the replaced workers' counts are kept

    # kill -9 of a worker: respawned; the new worker drops the dead one's live gauges.
    second = web.worker_pids()
    victim = min(second)
    if not (web.metrics / f"gauge_livemax_{victim}.db").exists():  # as a worker's breaker gauge leaves it
        MmapedDict(str(web.metrics / f"gauge_livemax_{victim}.db")).close()
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(web.worker_pids(10) - {victim}) == 2, 60, interval=0.5), \
        web.log.read_text(errors="replace")[-3000:]
    assert wait_until(lambda: not (web.metrics / f"gauge_livemax_{victim}.db").exists(), 30)
    assert requests.get(web.url + "/metrics", timeout=10).status_code == 200
