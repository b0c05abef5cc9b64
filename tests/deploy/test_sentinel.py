"""Redis behind Sentinel (master + replica + three sentinels): two app processes and a Celery
worker configured with REDIS_SENTINELS keep answering under steady reads and writes while the
master is killed (breaker, then the promoted replica); after the failover, invalidations reach
both processes' L1 through the re-established pub/sub, and the worker runs tasks from the
sentinel:// broker."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from articles.models import Article
from cdn.models import PurgeOutbox
from tests.factories import make_article, make_editor
from tests.support import Gunicorn, app_env, celery_worker, free_ports, require_postgresql, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sentinel_stack(sentinel_set, tmp_path):
    require_postgresql()
    env = app_env(
        REDIS_SENTINELS=sentinel_set.sentinel_env,
        REDIS_SENTINEL_MASTER=sentinel_set.master_name,
        # Host and port are replaced by the sentinels' answer; the db index stays.
        REDIS_URL="redis://127.0.0.1:6379/0",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/1",
        CACHE_KEY_PREFIX="newsite-sentinel",
        DB_POOL_MIN="1",
        DB_POOL_MAX="2",
    )
    apps = [Gunicorn(port=port, workdir=tmp_path, env=env, ready_path="/api/categories/")
            for port in free_ports(2)]
    try:
        with celery_worker(env, tmp_path / "worker.log", name="sentinel-test") as worker:
            for app in apps:
                app.wait_ready()
            yield apps, worker
    finally:
        for app in apps:
            app.stop()


class SteadyLoad(threading.Thread):
    """Reads on both hosts and a write every few rounds until stopped; records every outcome."""

    def __init__(self, apps, path, token):
        super().__init__(daemon=True)
        self.apps, self.path, self.token = apps, path, token
        self.outcomes: list[tuple[float, str, object]] = []
        self.stopping = threading.Event()

    def run(self):
        round_no = 0
        while not self.stopping.is_set():
            round_no += 1
            for app in self.apps:
                self._record("read", lambda app=app: requests.get(app.url + self.path, timeout=5))
            if round_no % 5 == 0:
                self._record("write", lambda n=round_no: requests.patch(
                    self.apps[0].url + self.path, json={"excerpt": f"steady write {n}"},
                    headers={"Authorization": f"Token {self.token}"}, timeout=5))
            time.sleep(0.02)

    def _record(self, kind, call):
        try:
            outcome = call().status_code
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        self.outcomes.append((time.monotonic(), kind, outcome))


def test_master_killed_under_load(sentinel_set, sentinel_stack):
    apps, _worker = sentinel_stack
    article = make_article(title="Before failover")
    editor = make_editor(username="sentinel-editor")
    token = Token.objects.create(user=editor).key
    path = f"/api/articles/{article.id}/"
    old_master = sentinel_set.master_address()
    assert old_master == ("127.0.0.1", sentinel_set.master.port)
    for app in apps:
        response = requests.get(app.url + path, timeout=5)
        assert response.status_code == 200 and response.json()["title"] == "Before failover"

    load = SteadyLoad(apps, path, token)
    load.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    sentinel_set.master.kill()
    try:
        new_master = wait_until(
            lambda: (address := sentinel_set.master_address()) != old_master and address, 20, interval=0.05)
        promoted_after = time.monotonic() - killed_at
        assert new_master == ("127.0.0.1", sentinel_set.replica.port)
        time.sleep(3.0)  # the breaker closes again and both hosts run on the new master
    finally:
        load.stopping.set()
        load.join(10)

    during = [(kind, outcome) for at, kind, outcome in load.outcomes if at >= killed_at]
    assert sum(kind == "read" for kind, _ in during) > 20 and any(kind == "write" for kind, _ in during)
    failures = [(kind, outcome) for kind, outcome in during if outcome != 200]
    assert not failures, f"{len(failures)} of {len(during)} requests failed during the failover: {failures[:10]}"

    # After the failover: both processes' L1 hold the current version, a write through the first
    # host reaches the second host's L1 by the broadcast (the L1 TTL is 30 s; the deadline is 5).
    def both_hit_l1():
        seen = [requests.get(app.url + path, timeout=5) for app in apps]
        return all(r.headers.get("X-Cache") == "HIT-L1" for r in seen)

    assert wait_until(both_hit_l1, 10, interval=0.1)
    write_at = time.monotonic()
    response = requests.patch(apps[0].url + path, json={"title": "After failover"},
                              headers={"Authorization": f"Token {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert wait_until(
        lambda: all(requests.get(app.url + path, timeout=5).json()["title"] == "After failover" for app in apps),
        5, interval=0.01)
    consistent_after = time.monotonic() - write_at
    # Nothing written during the outage is hidden by a cache entry from before it.
    latest = Article.objects.get(pk=article.pk)
    for app in apps:
        seen = requests.get(app.url + path, timeout=5).json()
        assert (seen["title"], seen["excerpt"]) == (latest.title, latest.excerpt)

    # The worker consumed that write's purge task from the sentinel:// broker (no beat runs here,
    # so only the worker can have delivered it).
    row = PurgeOutbox.objects.filter(created_at__gte=article.updated_at).order_by("-id").first()
    assert row is not None
    assert wait_until(lambda: PurgeOutbox.objects.get(pk=row.pk).status == "done", 30, interval=0.2), \
        PurgeOutbox.objects.get(pk=row.pk).last_error

    # /health/ checks Redis and the broker through the same Sentinel configuration.
    health = requests.get(apps[1].url + "/health/", timeout=5)
    assert health.status_code == 200, health.text

    print(f"\n[scaling] sentinel promoted the replica {promoted_after * 1000:.0f} ms after the master died; "
          f"{len(during)} requests during/after the failover, 0 failed; "
          f"write -> both L1s consistent after {consistent_after * 1000:.0f} ms")
