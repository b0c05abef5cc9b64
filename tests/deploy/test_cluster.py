"""Three app hosts behind one Varnish (round-robin director with health probes, the VCL of
deploy/varnish/render-cluster-vcl.py), sharing PostgreSQL and Redis: an editorial write through
one host is seen through Varnish and on every host once the broadcast lands; a host killed keeps
the site answering."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.deploy.conftest import ClusterVarnish
from tests.factories import make_article, make_editor
from tests.support import Gunicorn, app_env, free_ports, require_postgresql, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(tmp_path):
    require_postgresql()
    *app_ports, edge_port, admin_port = free_ports(5)
    env = app_env(
        # Purges to this edge run inline after commit (no worker in this test: the outbox and its
        # Celery delivery are tests/cdn's); the replica alias mirrors the primary (router path).
        CELERY_TASK_ALWAYS_EAGER="true",
        VARNISH_PURGE_URL=f"http://127.0.0.1:{edge_port}/",
        DATABASE_REPLICA_URLS=app_env()["DATABASE_URL"],
        DB_POOL_MIN="1",
        DB_POOL_MAX="2",
    )
    apps = [Gunicorn(port=port, workdir=tmp_path, env=env, ready_path="/api/categories/") for port in app_ports]
    edge = None
    try:
        for app in apps:
            app.wait_ready()
        edge = ClusterVarnish(port=edge_port, admin_port=admin_port, backends=app_ports)
        edge.start()
        yield apps, edge
    finally:
        if edge is not None:
            edge.close()
        for app in apps:
            app.stop()


def title_at(url: str) -> str | None:
    response = requests.get(url, timeout=5)
    return response.json()["title"] if response.status_code == 200 else None


def test_write_on_one_host_is_read_everywhere_and_a_dead_host_is_routed_around(cluster):
    apps, edge = cluster
    article = make_article(title="Version one")
    editor = make_editor(username="cluster-editor")
    token = Token.objects.create(user=editor).key
    path = f"/api/articles/{article.id}/"

    # Every host and the edge hold version one (the hosts' L1s after a second read, the edge copy).
    for app in apps:
        for _ in range(2):
            assert title_at(app.url + path) == "Version one"
    assert requests.get(app.url + path, timeout=5).headers["X-Cache"] == "HIT-L1"
    assert title_at(edge.url + path) == "Version one"
    assert requests.get(edge.url + path, timeout=5).headers["X-Cache-Edge"] == "HIT"
    assert wait_until(lambda: set(edge.backend_health().values()) == {"healthy"}, 10), edge.backend_health()

    # The editorial write through the first host only.
    started = time.monotonic()
    response = requests.patch(apps[0].url + path, json={"title": "Version two"},
                              headers={"Authorization": f"Token {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert "newsite_primary" in response.cookies, "the writer is pinned to the primary for a while"

    urls = [edge.url + path] + [app.url + path for app in apps]
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        def everyone_sees_version_two():
            return all(title == "Version two" for title in pool.map(title_at, urls))

        assert wait_until(everyone_sees_version_two, timeout=5, interval=0.01)
        consistent_after = time.monotonic() - started
        # No host serves the old version afterwards.
        for _ in range(5):
            assert list(pool.map(title_at, urls)) == ["Version two"] * len(urls)
    print(f"\n[scaling] write -> all 3 hosts + edge consistent after {consistent_after * 1000:.0f} ms")

    # A host dies. Cached reads keep coming from the edge; reads Varnish must pass to a host
    # (Authorization is never cached) keep answering: a fetch that hits the dead host is retried
    # on the next one, then the probe takes it out.
    apps[1].kill()
    killed_at = time.monotonic()
    auth = {"Authorization": f"Token {token}"}
    statuses = []
    for _ in range(12):
        statuses.append(requests.get(edge.url + path, headers=auth, timeout=10).status_code)
        statuses.append(requests.get(edge.url + "/api/articles/", timeout=10).status_code)
    assert set(statuses) == {200}, statuses
    assert wait_until(lambda: edge.backend_health().get("app2") == "sick", 10), edge.backend_health()
    marked_sick_after = time.monotonic() - killed_at
    statuses = [requests.get(edge.url + path, headers=auth, timeout=10).status_code for _ in range(9)]
    assert set(statuses) == {200}, statuses
    print(f"[scaling] killed host marked sick by the probe after {marked_sick_after * 1000:.0f} ms")
