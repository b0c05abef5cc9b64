"""PostgreSQL unavailable under load (issue 15's fault table): a private cluster started by the
test (the shared PostgreSQL is never stopped), the web server (run-web.sh) on it, PostgreSQL stopped and started
again. Cached URLs keep answering 200, the others 503 with Retry-After, nothing else; no cache
entry is deleted; service resumes after."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from bench.pgserver import FAST, PG_BINS, private_cluster
from tests.faults.stack import HTTP_TIMEOUT, Load, server_errors
from tests.support import REPO, RedisServer, WebServer, app_env, free_port, wait_until

pytestmark = pytest.mark.slow

SETUP_DATA = """
import json, django
django.setup()
from rest_framework.authtoken.models import Token
from tests.factories import make_article, make_editor
cached, uncached = make_article(title="Cached"), make_article(title="Never read")
token = Token.objects.create(user=make_editor()).key
print(json.dumps({"cached": cached.id, "uncached": uncached.id, "token": token}))
"""


@pytest.fixture
def private_pg():
    if not PG_BINS:
        pytest.skip("PostgreSQL server binaries not installed")
    with private_cluster(free_port(), prefix="newsite-pg-faults-") as server:
        yield server


def test_postgresql_down_cached_urls_answer_the_rest_get_503(private_pg, tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    env = app_env(DATABASE_URL=private_pg.url(), REDIS_URL=redis_server.url, CACHE_KEY_PREFIX="faults-pg",
                  CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_server.port}/1")
    app = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True,
                       timeout=300, capture_output=True)
        ids = json.loads(subprocess.run([sys.executable, "-c", SETUP_DATA], cwd=REPO, env=env, check=True,
                                        timeout=120, capture_output=True, text=True).stdout)
        app = WebServer(port=free_port(), workdir=tmp_path, env=env, workers=2)
        app.wait_ready()
        cached = f"{app.url}/api/articles/{ids['cached']}/"
        uncached = f"{app.url}/api/articles/{ids['uncached']}/"
        for _ in range(20):
            assert requests.get(cached, timeout=HTTP_TIMEOUT).status_code == 200
        keys_before = redis_server.client().dbsize()

        private_pg.stop()  # immediate: connections cut
        load = Load([cached, uncached]).start()
        try:
            assert wait_until(lambda: load.snapshot()[503] >= 20 and load.snapshot()[200] >= 20, 60)
            down = requests.get(uncached, timeout=HTTP_TIMEOUT)
            assert down.status_code == 503 and down.headers.get("Retry-After"), (down.status_code, down.text[:300])
            assert requests.get(cached, timeout=HTTP_TIMEOUT).json()["title"] == "Cached"
            assert redis_server.client().dbsize() >= keys_before  # a database error deletes nothing
            # An edit, outside the tiers, is refused by the breaker too (not after the pool's
            # timeout): 503 + Retry-After, the view never run. The ops pages answer.
            edit_path = f"/api/articles/{ids['uncached']}/"
            for _ in range(10):
                edit = requests.patch(app.url + edit_path, json={"title": "Edited while down"},
                                      headers={"Authorization": f"Token {ids['token']}"}, timeout=HTTP_TIMEOUT)
                assert edit.status_code == 503 and edit.headers.get("Retry-After"), (edit.status_code, edit.text[:300])
            assert wait_until(lambda: f"database unavailable for {edit_path}: database circuit breaker open"
                              in app.log.read_text(errors="replace"), 30), app.log.read_text(errors="replace")[-3000:]
            assert requests.get(app.url + "/metrics", timeout=HTTP_TIMEOUT).status_code == 200
            assert requests.get(app.url + "/health/cache/", timeout=HTTP_TIMEOUT).json()["outbox"]["error"]
            # The breaker's half-open probes found the server down by a bare connect, not by
            # waiting DB_POOL_TIMEOUT in the pool's getconn (newsite.db_breaker.database_reachable).
            assert wait_until(lambda: "database unreachable (breaker probe)" in app.log.read_text(errors="replace"),
                              30), app.log.read_text(errors="replace")[-3000:]
            private_pg.start(*FAST)
            restarted_at, ok_at_restart = len(app.log.read_text(errors="replace")), load.snapshot()[200]
            assert wait_until(lambda: requests.get(uncached, timeout=HTTP_TIMEOUT).status_code == 200, 60)
            # Readers go on past the recovery (the uncached URL is half of their requests).
            assert wait_until(lambda: load.snapshot()[200] >= ok_at_restart + 400, 60)
        finally:
            statuses = load.stop()
        assert server_errors(statuses) == {} and all(isinstance(k, int) for k in statuses), statuses
        assert requests.get(uncached, timeout=HTTP_TIMEOUT).json()["title"] == "Never read"  # no edit got in
        assert wait_until(lambda: requests.patch(
            f"{app.url}/api/articles/{ids['uncached']}/", json={"title": "Edited after"},
            headers={"Authorization": f"Token {ids['token']}"}, timeout=HTTP_TIMEOUT).status_code == 200, 30)
        # The server is back: no request after it failed on a connection pooled before the
        # outage (a lost connection discards the pool: newsite.db_breaker.discard_connection_pool).
        after = app.log.read_text(errors="replace")[restarted_at:]
        failed = [line for line in after.splitlines() if "database unavailable for" in line
                  and "database circuit breaker open" not in line and "couldn't get a connection" not in line]
        assert failed == [], "\n".join(failed[:10])
    finally:
        if app is not None:
            app.stop()
        redis_server.stop()
