"""The freshness canary and the request id on a live stack: gunicorn with 2 workers, Varnish in
front, a real Celery worker (prefork, 2 processes: one runs the canary while the other drains the
CDN outbox) sharing gunicorn's PROMETHEUS_MULTIPROC_DIR. The canary task is sent to the broker as
beat would send it; the edge is made to fail by stopping Varnish (its port closed)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO, Gunicorn, _terminate, app_env, free_port, require_postgresql, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAX_AGE = 3.0  # FRESHNESS_CANARY_MAX_AGE of the stack (> TIMEOUT: a healthy tier is never that old)
TIMEOUT = 1.5  # FRESHNESS_CANARY_TIMEOUT


@contextlib.contextmanager
def prefork_worker(env: dict, log_path: Path, ready_timeout: float = 60.0):
    log = open(log_path, "w+")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "newsite", "worker", "-P", "prefork", "-c", "2", "-l", "info",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"canary-{os.getpid()}@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        def ready():
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("celery worker exited: " + log.read()[-3000:])
            log.seek(0)
            return "ready." in log.read()

        if not wait_until(ready, ready_timeout, 0.2):
            raise RuntimeError("celery worker not ready")
        yield proc
    finally:
        _terminate(proc, 20)
        log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_setup, django_db_blocker):
    if not shutil.which("varnishd"):
        pytest.skip("varnishd not installed (make test installs it)")
    with django_db_blocker.unblock():
        require_postgresql()
        from tests.cdn.servers import Varnish

        workdir = tmp_path_factory.mktemp("canary")
        metrics_dir = workdir / "prom"
        metrics_dir.mkdir()
        app_port = free_port()
        with contextlib.ExitStack() as stack:
            varnish = Varnish(app_port)
            stack.callback(varnish.close)
            env = app_env(
                LOG_LEVEL="INFO", DB_POOL_MIN="1", DB_POOL_MAX="3", CELERY_TASK_ALWAYS_EAGER="false",
                VARNISH_PURGE_URL=varnish.url + "/", NEWSITE_APP_URL=f"http://127.0.0.1:{app_port}",
                NEWSITE_EDGE_URL=varnish.url, FRESHNESS_CANARY_MAX_AGE=str(MAX_AGE),
                FRESHNESS_CANARY_TIMEOUT=str(TIMEOUT), FRESHNESS_CANARY_EVERY="0",
            )
            for name in ("FASTLY_SERVICE_ID", "CLOUDFLARE_ZONE_ID"):
                env.pop(name, None)
            app = Gunicorn(port=app_port, workdir=workdir, env=env, workers=2, metrics_dir=metrics_dir)
            stack.callback(app.stop)
            varnish.start()
            worker_log = workdir / "celery.log"
            stack.enter_context(prefork_worker({**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, worker_log))
            app.wait_ready()
            # Both workers booted and answering (on a busy machine the second may still import
            # Django when the first answers): the canary can only reach workers that are up.
            assert wait_until(lambda: every_worker_answers(app), 60), "a gunicorn worker never answered"
            yield SimpleNamespace(app=app, edge=varnish, worker_log=worker_log)


def every_worker_answers(app) -> bool:
    from newsite.ops.canary import PROBE_HEADER, SERVED_BY_HEADER

    def served_by(_):
        return requests.get(app.url + "/health/", headers={PROBE_HEADER: "1"}, timeout=10).headers.get(SERVED_BY_HEADER)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answered = {int(pid) for pid in pool.map(served_by, range(16)) if pid}
    return answered == worker_pids(app.proc.pid)


def worker_pids(master_pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def run_canary() -> object:
    """Send ops.freshness_canary to the broker (as beat does) and wait for the run to be stored."""
    from newsite.celery import app
    from newsite.ops.models import FreshnessCanary

    def runs() -> int:
        row = FreshnessCanary.objects.filter(pk=1).first()
        return row.runs if row else 0

    before = runs()
    app.send_task("ops.freshness_canary")
    assert wait_until(lambda: runs() > before, 60, 0.1), "the canary task did not run"
    return FreshnessCanary.objects.get(pk=1)


def health(stack) -> requests.Response:
    return requests.get(stack.app.url + "/health/cache/", timeout=10)


def canary_gauges(stack) -> dict[tuple[str, str], float]:
    text = requests.get(stack.app.url + "/metrics", timeout=10).text
    return {
        (s.name, s.labels["tier"]): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
        if s.name.startswith("newsite_freshness_canary_")
    }


def test_canary_reads_every_tier_and_health_names_the_stale_one(stack):
    assert health(stack).json()["canary"] == "never ran"

    row = run_canary()
    tiers = row.tiers
    assert set(tiers) == {"l2", "l1", "edge"}, tiers
    assert all(t["fresh"] for t in tiers.values()), tiers
    assert tiers["l1"]["value"] == tiers["edge"]["value"] == row.value
    assert tiers["l2"]["value"] in (None, row.value)  # None: invalidated and not refilled yet
    # L1: every gunicorn worker answered the new value (X-Served-By), not just one.
    assert set(tiers["l1"]["pids"]) == worker_pids(stack.app.proc.pid), tiers["l1"]
    response = health(stack)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["canary"]["status"] == "ok" and body["canary"]["failed"] == []
    assert set(body["canary"]["tiers"]) == {"l2", "l1", "edge"}
    gauges = canary_gauges(stack)  # set by the Celery worker, shown by gunicorn's /metrics
    for tier in ("l2", "l1", "edge"):
        assert ("newsite_freshness_canary_seconds", tier) in gauges, gauges
        assert 0 <= gauges[("newsite_freshness_canary_age_seconds", tier)] < MAX_AGE
    assert gauges[("newsite_freshness_canary_seconds", "edge")] < TIMEOUT  # the purge arrived

    # No canary for longer than MAX_AGE (beat stopped): 503 naming the writer.
    stale = wait_until(lambda: (r := health(stack)).status_code == 503 and [r], 30, 0.2)
    assert stale, "the canary never went stale"  # (a 503 Response is falsy: it is wrapped in a list)
    assert stale[0].json()["failed"] == ["canary:writer"]
    assert canary_gauges(stack)[("newsite_freshness_canary_age_seconds", "edge")] > MAX_AGE

    # The edge is gone (its port closed): L1 and L2 get the new value, the edge does not.
    stack.edge.stop()
    row = run_canary()
    assert row.tiers["l1"]["fresh"] and row.tiers["l2"]["fresh"]
    assert not row.tiers["edge"]["fresh"] and row.tiers["edge"]["error"]
    response = health(stack)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["failed"] == ["canary:edge"] and body["canary"]["failed"] == ["edge"]
    assert body["canary"]["tiers"]["l1"]["age_seconds"] < MAX_AGE
    assert canary_gauges(stack)[("newsite_freshness_canary_seconds", "edge")] >= TIMEOUT

    stack.edge.start()
    row = run_canary()
    assert row.tiers["edge"]["fresh"], row.tiers
    assert health(stack).status_code == 200


def test_a_requests_id_is_on_its_log_lines_its_response_and_its_celery_task(stack):
    from rest_framework.authtoken.models import Token

    from tests.factories import make_article, make_editor

    article = make_article()
    token = Token.objects.create(user=make_editor()).key
    request_id = f"test-{uuid.uuid4().hex}"
    # A like: its counts purge waits in its coalescing window, then goes through the Celery
    # drain (an edit's purge is sent to Varnish by the writer itself before it returns, no task).
    response = requests.post(f"{stack.app.url}/api/articles/{article.pk}/like/",
                             headers={"Authorization": f"Token {token}", "X-Request-ID": request_id}, timeout=30)
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id

    def lines(path: Path) -> list[str]:
        return [line for line in path.read_text(errors="replace").splitlines() if f"request_id={request_id}" in line]

    web = wait_until(lambda: [x for x in lines(stack.app.log) if "event=cache_invalidation_requested" in x], 10)
    assert web, stack.app.log.read_text()[-3000:]
    assert f"article-counts:{article.pk}" in web[0]
    # The CDN drain the like enqueued logs in the worker under the same request id.
    task = wait_until(lambda: [x for x in lines(stack.worker_log) if "event=cdn_purge_delivered" in x], 30)
    assert task, stack.worker_log.read_text()[-3000:]
    assert "backend=varnish" in task[0] and "task_id=" in task[0]

    # A request id that is not a sane token is replaced, never echoed into logs or headers.
    response = requests.get(stack.app.url + "/health/", headers={"X-Request-ID": "x\" injected=1"}, timeout=10)
    assert uuid.UUID(response.headers["X-Request-ID"])
