"""A real PostgreSQL streaming replica: a primary and a hot standby (initdb + pg_basebackup, both
started by the test on free ports in a temp dir), a gunicorn with DATABASE_URL on the primary and
DATABASE_REPLICA_URLS on the standby, the standby named in the primary's
synchronous_standby_names and the app committing with synchronous_commit=remote_apply (the
default when replicas are configured). Reads are served by the standby, and a write is seen by
every reader - including cache fills, which read the standby - as soon as its response is out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bench.pgserver import FAST, PG_BINS, PgServer, as_postgres, temporary_root
from tests.support import REPO, Gunicorn, app_env, free_ports, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_pair():
    if not PG_BINS:
        pytest.skip("PostgreSQL server binaries not installed")
    bin_dir = Path(PG_BINS[-1])
    root = temporary_root("newsite-pg-pair-")
    primary_port, standby_port = free_ports(2)
    primary = PgServer(bin_dir, root / "primary", primary_port, root / "primary.log")
    standby = PgServer(bin_dir, root / "standby", standby_port, root / "standby.log")
    try:
        primary.initdb()
        primary.start(*FAST, "-c wal_level=replica", "-c max_wal_senders=4",
                      "-c synchronous_standby_names=replica1")
        as_postgres(str(bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary_port),
                    "-U", "postgres", "-D", str(standby.data), "-R", "-X", "stream", "--no-sync")
        # cluster_name is the walreceiver's application_name: what synchronous_standby_names names.
        standby.start(*FAST, "-c hot_standby=on", "-c cluster_name=replica1")
        assert wait_until(lambda: primary.query(
            "select sync_state from pg_stat_replication where application_name = 'replica1'",
            db="postgres") == [("sync",)], 20, interval=0.1), "the standby did not attach as synchronous"
        primary.query("create database newsite", db="postgres")
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


SETUP_DATA = """
import json, django
django.setup()
from rest_framework.authtoken.models import Token
from tests.factories import make_article, make_editor
editor = make_editor(username="replica-editor")
article = make_article(title="Replica v0")
print(json.dumps({"article": article.id, "token": Token.objects.create(user=editor).key}))
"""


def test_reads_go_to_the_standby_and_writes_are_seen_at_once(pg_pair, tmp_path):
    primary, standby = pg_pair
    env = app_env(
        DATABASE_URL=primary.url(),
        DATABASE_REPLICA_URLS=standby.url() + "?application_name=newsite-replica-reads",
        CACHE_KEY_PREFIX="newsite-replica-test",
        CELERY_TASK_ALWAYS_EAGER="true",
        DB_POOL_MIN="1",
        DB_POOL_MAX="2",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=120)
    made = subprocess.run([sys.executable, "-c", SETUP_DATA], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True, timeout=60)
    data = json.loads(made.stdout.strip().splitlines()[-1])
    path = f"/api/articles/{data['article']}/"
    # The standby has everything the primary committed (remote_apply also covers migrate's).
    assert standby.query(f"select title from articles_article where id = {data['article']}") == [("Replica v0",)]
    assert standby.query("select pg_is_in_recovery()") == [(True,)]

    [port] = free_ports(1)
    app = Gunicorn(port=port, workdir=tmp_path, env=env, ready_path="/api/categories/")
    try:
        app.wait_ready()

        def standby_now():
            return standby.query("select now()", db="postgres")[0][0]

        def app_queried_standby_since(moment) -> bool:
            [(last,)] = standby.query("select max(query_start) from pg_stat_activity "
                                      "where application_name = 'newsite-replica-reads'", db="postgres")
            return last is not None and last > moment

        before = standby_now()
        assert requests.get(app.url + path, timeout=5).json()["title"] == "Replica v0"
        assert app_queried_standby_since(before), "the cache fill read the standby"

        lags = []
        for version in range(1, 6):
            title = f"Replica v{version}"
            started = time.monotonic()
            response = requests.patch(app.url + path, json={"title": title},
                                      headers={"Authorization": f"Token {data['token']}"}, timeout=10)
            assert response.status_code == 200, response.text
            # A new reader (no pin cookie): the public entry was invalidated after commit, the
            # refill reads the standby, which had applied the commit before the response left.
            before = standby_now()
            assert requests.get(app.url + path, timeout=5).json()["title"] == title
            assert app_queried_standby_since(before)
            lags.append(time.monotonic() - started)
        print(f"\n[scaling] write -> fresh read from the standby: max {max(lags) * 1000:.0f} ms over {len(lags)} writes")
    finally:
        app.stop()
