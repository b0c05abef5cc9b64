"""A real PostgreSQL streaming replica: a primary and a hot standby (initdb + pg_basebackup, both
started by the test on free ports in a temp dir), gunicorns with DATABASE_URL on the primary and
DATABASE_REPLICA_URLS on the standby.

- Synchronous, as an option: the standby named in the primary's synchronous_standby_names and the
  app committing with DATABASE_REPLICA_SYNC_COMMIT=remote_apply. Reads are served by the standby,
  and a write is seen by every reader - including cache fills, which read the standby - as soon
  as its response is out.
- Asynchronous, the default (issue 26): no synchronous_standby_names and the standby applying
  the WAL 2 s late (recovery_min_apply_delay). Readers without the pin cookie race an editor
  through two web processes and a real Varnish: once a write has returned and the standby has
  had time to replay it, no reader sees the previous title - a fill read from the standby before
  it replayed the write is fenced by the WAL position (caching/fence.py) and re-read from the
  primary, so nothing old is put back into L1, L2 or the edge. Then the standby stops replaying
  for longer than DATABASE_REPLICA_MAX_LAG, and then stops: requests read the primary, none
  fails, and the fallbacks are counted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from bench.pgserver import FAST, PG_BINS, PgServer, as_postgres, temporary_root
from tests.cdn.servers import Varnish
from tests.support import REPO, Gunicorn, app_env, free_ports, wait_until

pytestmark = pytest.mark.slow

APPLY_DELAY = 2.0  # the asynchronous standby's recovery_min_apply_delay (s)
MAX_LAG = 5.0  # DATABASE_REPLICA_MAX_LAG of the asynchronous test's servers (s)


@contextmanager
def streaming_pair(*, synchronous: bool, apply_delay: float = 0.0):
    """(primary, standby) with database `newsite` on both; the standby attached synchronously
    (named in synchronous_standby_names) or asynchronously with `apply_delay` seconds of delay."""
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
                      *(["-c synchronous_standby_names=replica1"] if synchronous else []))
        as_postgres(str(bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary_port),
                    "-U", "postgres", "-D", str(standby.data), "-R", "-X", "stream", "--no-sync")
        # cluster_name is the walreceiver's application_name: what synchronous_standby_names names.
        standby.start(*FAST, "-c hot_standby=on", "-c cluster_name=replica1",
                      *([f"-c recovery_min_apply_delay={int(apply_delay * 1000)}ms"] if apply_delay else []))
        state = "sync" if synchronous else "async"
        assert wait_until(lambda: primary.query(
            "select sync_state from pg_stat_replication where application_name = 'replica1'",
            db="postgres") == [(state,)], 20, interval=0.1), f"the standby did not attach as {state}"
        primary.query("create database newsite", db="postgres")
        assert wait_until(lambda: standby.query(
            "select count(*) from pg_database where datname = 'newsite'", db="postgres") == [(1,)],
            apply_delay + 20, interval=0.1), "the standby did not replay the database's creation"
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_pair():
    with streaming_pair(synchronous=True) as pair:
        yield pair


@pytest.fixture
def async_pg_pair():
    with streaming_pair(synchronous=False, apply_delay=APPLY_DELAY) as pair:
        yield pair


SETUP_DATA = """
import json, django
django.setup()
from rest_framework.authtoken.models import Token
from tests.factories import make_article, make_editor
editor = make_editor(username="replica-editor")
article = make_article(title="Replica v0")
print(json.dumps({"article": article.id, "token": Token.objects.create(user=editor).key}))
"""


def test_remote_apply_option_reads_go_to_the_standby_and_writes_are_seen_at_once(pg_pair, tmp_path):
    primary, standby = pg_pair
    env = app_env(
        DATABASE_URL=primary.url(),
        DATABASE_REPLICA_URLS=standby.url() + "?application_name=newsite-replica-reads",
        CACHE_KEY_PREFIX="newsite-replica-test",
        CELERY_TASK_ALWAYS_EAGER="true",
        DB_POOL_MIN="1",
        DB_POOL_MAX="2",
        # An option now (the default leaves the server's setting): commits wait for the standby.
        DATABASE_REPLICA_SYNC_COMMIT="remote_apply",
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


READERS = 6
WRITES = 8
WRITE_EVERY = 1.0  # s between an edit's response and the next edit
MARGIN = 1.0  # s after write return + APPLY_DELAY from which no reader may see an older title
TITLE = re.compile(r"Race v(\d+) title")
FALLBACKS = re.compile(r'newsite_cache_replica_fallbacks_total\{reason="(\w+)"\} ([0-9.e+]+)')


def fallbacks(app) -> dict[str, float]:
    text = requests.get(app.url + "/metrics", timeout=10).text
    return {reason: float(n) for reason, n in FALLBACKS.findall(text)}


def test_async_lagging_standby_never_puts_an_old_version_back(async_pg_pair, tmp_path):
    primary, standby = async_pg_pair
    port_a, port_b = free_ports(2)
    varnish = Varnish(port_a).start()
    env = app_env(
        DATABASE_URL=primary.url(),
        DATABASE_REPLICA_URLS=standby.url() + "?application_name=newsite-replica-reads",
        # Old entries of an earlier run (same article ids) must not be read.
        CACHE_KEY_PREFIX=f"newsite-replica-async-{time.time_ns()}",
        CELERY_TASK_ALWAYS_EAGER="true",  # the purge drain runs inline after the commit
        VARNISH_PURGE_URL=varnish.url,
        DB_POOL_MIN="1",
        DB_POOL_MAX="4",
        DB_POOL_TIMEOUT="1",
        DATABASE_REPLICA_MAX_LAG=str(MAX_LAG),
    )
    assert "DATABASE_REPLICA_SYNC_COMMIT" not in env  # the default: the server's setting (async)
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=120)
    made = subprocess.run([sys.executable, "-c", SETUP_DATA.replace("Replica v0", "Race v0 title")],
                          cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=60)
    data = json.loads(made.stdout.strip().splitlines()[-1])
    detail = f"/api/articles/{data['article']}/"

    def standby_title():
        try:
            return standby.query(f"select title from articles_article where id = {data['article']}")
        except Exception:  # noqa: BLE001 (psycopg's UndefinedTable: the migrations not replayed yet)
            return None

    assert wait_until(lambda: standby_title() == [("Race v0 title",)], APPLY_DELAY + 20, interval=0.1)
    assert primary.query("select setting from pg_settings where name = 'synchronous_standby_names'",
                         db="postgres") == [("",)]

    apps = [Gunicorn(port=port, workdir=tmp_path, env=env, threads=4, ready_path="/api/categories/")
            for port in (port_a, port_b)]
    try:
        for app in apps:
            app.wait_ready()
        targets = [base + path for base in (apps[0].url, apps[1].url, varnish.url)
                   for path in (detail, "/api/articles/")]
        for url in targets:
            assert "Race v0 title" in requests.get(url, timeout=10).text

        [(race_started,)] = standby.query("select now()", db="postgres")

        def standby_read_since(moment) -> bool:
            [(last,)] = standby.query("select max(query_start) from pg_stat_activity "
                                      "where application_name = 'newsite-replica-reads'", db="postgres")
            return last is not None and last > moment

        returned: dict[int, float] = {0: 0.0}
        reads: list[tuple[float, int, str, str]] = []  # (sent at, version seen, url, X-Cache[/edge])
        errors: list[str] = []
        stop = threading.Event()

        def reader(offset: int) -> None:
            session = requests.Session()  # keeps no cookie: public responses set none
            for i in range(20_000):
                if stop.is_set():
                    return
                url = targets[(offset + i) % len(targets)]
                sent = time.monotonic()
                try:
                    response = session.get(url, timeout=10)
                except requests.RequestException as exc:
                    errors.append(f"{url}: {exc}")
                    continue
                if response.status_code != 200:
                    errors.append(f"{url}: {response.status_code}")
                    continue
                versions = [int(v) for v in TITLE.findall(response.text)]
                if not versions:
                    errors.append(f"{url}: no title in {response.text[:200]}")
                    continue
                where = f"{response.headers.get('X-Cache')}/{response.headers.get('X-Cache-Edge', '-')}"
                reads.append((sent, min(versions), url, where))

        threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(READERS)]
        for thread in threads:
            thread.start()
        try:
            for version in range(1, WRITES + 1):
                time.sleep(WRITE_EVERY)
                response = requests.patch(apps[version % 2].url + detail,
                                          json={"title": f"Race v{version} title"},
                                          headers={"Authorization": f"Token {data['token']}"}, timeout=10)
                assert response.status_code == 200, response.text
                returned[version] = time.monotonic()
            time.sleep(APPLY_DELAY + MARGIN + 1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)

        def newer_returned_before(seen: int, moment: float) -> list[int]:
            return [v for v, at in returned.items() if v > seen and at < moment]

        stale = [r for r in reads if newer_returned_before(r[1], r[0] - APPLY_DELAY - MARGIN)]
        early = [r for r in reads if newer_returned_before(r[1], r[0]) and r not in stale]
        counts = [fallbacks(app) for app in apps]
        print(f"\n[replica] {len(reads)} reads racing {WRITES} edits: {len(stale)} showed a previous "
              f"title after write return + {APPLY_DELAY + MARGIN:.0f} s, {len(early)} within it; "
              f"fallbacks {counts}")
        assert not errors, errors[:5]
        assert len(reads) > 10 * WRITES
        assert stale == [], stale[:10]
        assert standby_read_since(race_started), "the fills read the standby"
        assert sum(c.get("fence", 0) for c in counts) > 0, "no fill was fenced: the standby was not behind?"
        for url in targets:  # every tier, once the standby has replayed everything
            assert f"Race v{WRITES} title" in requests.get(url, timeout=10).text, url

        def edit(app, version: int) -> None:
            reply = requests.patch(app.url + detail, json={"title": f"Race v{version} title"},
                                   headers={"Authorization": f"Token {data['token']}"}, timeout=10)
            assert reply.status_code == 200, reply.text

        def every_target_shows(version: int) -> None:
            for url in targets:
                reply = requests.get(url, timeout=10)
                assert reply.status_code == 200, (url, reply.text[:300])
                assert f"Race v{version} title" in reply.text, url

        # Far behind: the standby stops replaying. The next edit's refills are fenced (and teach
        # each process that write's position); once it is older than DATABASE_REPLICA_MAX_LAG,
        # requests skip the standby altogether.
        standby.query("select pg_wal_replay_pause()", db="postgres")
        edit(apps[0], 50)
        every_target_shows(50)
        time.sleep(MAX_LAG + 1.5)
        edit(apps[1], 51)
        every_target_shows(51)
        assert sum(fallbacks(app).get("behind", 0) for app in apps) > 0
        standby.query("select pg_wal_replay_resume()", db="postgres")

        # The standby stops: requests read the primary, none fails, the fallback is counted.
        standby.stop()
        response = requests.patch(apps[0].url + detail, json={"title": "Race v99 title"},
                                  headers={"Authorization": f"Token {data['token']}"}, timeout=10)
        assert response.status_code == 200, response.text
        for url in targets:
            response = requests.get(url, timeout=10)
            assert response.status_code == 200, (url, response.text[:300])
            assert "Race v99 title" in response.text, url
        assert sum(fallbacks(app).get("unavailable", 0) for app in apps) > 0
    finally:
        for app in apps:
            app.stop()
        varnish.close()
