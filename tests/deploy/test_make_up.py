"""`make up` / `make down` as a newcomer runs them: from a fresh `git clone` of this checkout's
HEAD (no `.run/`), on free ports, with a PostgreSQL database, a Redis and a key prefix of its own.
The app and the edge answer a public page; a PATCH through the editorial API is purged by the
Celery worker, and the app's /metrics shows that purge (the worker shares the web server's
PROMETHEUS_MULTIPROC_DIR); `make down` leaves no process of the stack behind.

Uncommitted changes are not in the clone: commit before running this test.

The clone reuses this checkout's virtualenv (`.venv` a symlink to it). That is only honest when
the Makefile would not reinstall anything, so the test checks the clone's requirements files are
this checkout's, gives them this checkout's mtimes (git sets checkout time) and asserts
`make -q venv` finds the venv up to date before running `make up`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO, RedisServer, free_ports, listening, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PG_ADMIN = "postgresql://127.0.0.1:5432/postgres"
PIDFILES = (".run/web.pid", ".run/celery-worker.pid", ".run/celery-beat.pid", ".run/varnish/varnishd.pid")

MAKE_STAFF = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from django.contrib.auth.models import Permission
user = get_user_model().objects.create_user("upcheck-editor", password="upcheck-editor", is_staff=True)
user.user_permissions.add(Permission.objects.get(codename="change_article", content_type__app_label="articles"))
print("TOKEN=" + Token.objects.create(user=user).key)
"""


def metric_sum(metrics_text: str, name: str, result: str) -> float:
    """`name`{result=`result`} summed over its other labels (0 when there is none yet)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == name and s.labels.get("result") == result
    )


def edge_acks(metrics_text: str) -> float:
    """Writes whose purge every Varnish node confirmed."""
    return metric_sum(metrics_text, "newsite_cdn_edge_acks_total", "acked")


def purges_ok(metrics_text: str) -> float:
    """CDN purges delivered, summed over backends."""
    return metric_sum(metrics_text, "newsite_cdn_purges_total", "ok")


def purges_by_pid(metrics_dir: Path) -> dict[int, float]:
    """newsite_cdn_purges_total per process, from each process's own counter file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        total = sum(
            s.value
            for family in MultiProcessCollector.merge([str(path)], accumulate=True)
            for s in family.samples
            if s.name == "newsite_cdn_purges_total"
        )
        if total:
            counts[int(re.match(r"counter_(\d+)\.db", path.name).group(1))] = total
    return counts


def session_pids(pid: int) -> set[int]:
    """`pid` and every process of its session (a daemon's workers, pool processes, children)."""
    table = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True, check=True).stdout
    rows = [tuple(map(int, line.split())) for line in table.splitlines() if line.strip()]
    sid = next((s for p, s in rows if p == pid), None)
    return {pid} | {p for p, s in rows if sid is not None and s == sid}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def clean_clone(tmp_path):
    """A `git clone` of HEAD with this checkout's venv, which `make` must find up to date."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=120)
    assert not (clone / ".run").exists(), "a fresh clone has no .run/"
    venv = (REPO / ".venv").resolve()
    assert (venv / "bin" / "python").exists(), "this checkout has no .venv (make venv)"
    (clone / ".venv").symlink_to(venv, target_is_directory=True)
    for name in ("requirements.txt", "requirements-dev.txt"):
        ours, theirs = REPO / name, clone / name
        assert theirs.read_bytes() == ours.read_bytes(), f"{name} has uncommitted changes: commit first"
        stat = ours.stat()
        os.utime(theirs, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    question = subprocess.run(["make", "-q", "venv"], cwd=clone, env=make_env({}), capture_output=True)
    assert question.returncode == 0, "make would reinstall the venv: run `make venv` in this checkout first"
    return clone


@pytest.fixture
def stack_env(tmp_path):
    """The environment of `make up` / `make down`: free ports, a private redis-server (cache and
    broker), a database and key prefix of its own; the database is dropped at the end."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server binary not installed")
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = RedisServer(redis_dir)
    redis.start()
    http_port, edge_port, admin_port = free_ports(3)
    token = uuid.uuid4().hex[:10]
    dbname = f"newsite_upcheck_{token}"
    env = {
        "NEWSITE_HTTP_PORT": str(http_port),
        "NEWSITE_EDGE_PORT": str(edge_port),
        "NEWSITE_VARNISH_ADMIN_PORT": str(admin_port),
        "DATABASE_URL": f"postgres://127.0.0.1:5432/{dbname}",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis.port}/1",
        "CACHE_KEY_PREFIX": f"upcheck-{token}",
        "SEED_ARTICLES": "40",
        "WEB_WORKERS": "2",
    }
    try:
        yield env
    finally:
        redis.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{dbname}" with (force)')


def make_env(extra: dict) -> dict:
    """This environment without what the suite itself runs on (its database, Redis, prefix, the
    outer make's flags), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "PYTEST_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CACHE_KEY_PREFIX", "VARNISH_PURGE_URL",
                 "PROMETHEUS_MULTIPROC_DIR", "DATABASE_REPLICA_URLS", "REDIS_SENTINELS", "FASTLY_SERVICE_ID",
                 "CLOUDFLARE_ZONE_ID", "GUNICORN_BIND", "WEB_BIND", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_make(target: str, clone: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["make", target], cwd=clone, env=env, capture_output=True, text=True, timeout=timeout)


def pending_purges(database_url: str) -> int:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        return conn.execute("select count(*) from cdn_purgeoutbox where status = 'pending'").fetchone()[0]


def test_make_up_from_a_clean_clone_serves_counts_purges_and_make_down_stops_it(clean_clone, stack_env):
    clone, env = clean_clone, make_env(stack_env)
    app = f"http://127.0.0.1:{stack_env['NEWSITE_HTTP_PORT']}"
    edge = f"http://127.0.0.1:{stack_env['NEWSITE_EDGE_PORT']}"
    ports = [int(stack_env[k]) for k in ("NEWSITE_HTTP_PORT", "NEWSITE_EDGE_PORT", "NEWSITE_VARNISH_ADMIN_PORT")]
    started: set[int] = set()
    try:
        up = run_make("up", clone, env, timeout=600)
        assert up.returncode == 0, f"make up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        assert (clone / ".run" / "prometheus").is_dir()
        for pidfile in PIDFILES:
            started |= session_pids(int((clone / pidfile).read_text()))
        worker_pids = session_pids(int((clone / ".run/celery-worker.pid").read_text()))

        # The app and the edge answer public pages, the edge from its cache the second time.
        home = requests.get(app + "/", timeout=10)
        assert home.status_code == 200 and "text/html" in home.headers["Content-Type"]
        feed = requests.get(app + "/api/articles/", timeout=10)
        assert feed.status_code == 200
        article = feed.json()["results"][0]
        assert article["title"] in home.text, "the front page shows the newest article"
        detail_url = f"{edge}/api/articles/{article['id']}/"
        first = requests.get(detail_url, timeout=10)
        assert first.status_code == 200 and first.json()["title"] == article["title"]
        second = requests.get(detail_url, timeout=10)
        assert second.headers["X-Cache-Edge"] == "HIT", second.headers

        # A PATCH through the editorial API: the writer purges Varnish itself and waits for its
        # acknowledgement (cdn/edge_ack.py); then a like, whose counts purge goes through the
        # outbox drain: the worker delivers it, /metrics counts it.
        staff = subprocess.run([".venv/bin/python", "manage.py", "shell", "-c", MAKE_STAFF], cwd=clone, env=env,
                               capture_output=True, text=True, timeout=120, check=True)
        token = re.search(r"TOKEN=(\w+)", staff.stdout).group(1)
        assert wait_until(lambda: pending_purges(env["DATABASE_URL"]) == 0, 60, interval=0.2), \
            "the purges of make up's own writes were not delivered"
        before = purges_ok(requests.get(app + "/metrics", timeout=10).text)
        new_title = f"Edited under make up {uuid.uuid4().hex[:6]}"
        patch = requests.patch(f"{app}/api/articles/{article['id']}/", data=json.dumps({"title": new_title}),
                               headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
                               timeout=10)
        assert patch.status_code == 200, patch.text
        assert requests.get(detail_url, timeout=10).json()["title"] == new_title, "the writer purged the edge"
        assert edge_acks(requests.get(app + "/metrics", timeout=10).text) >= 1, "the write waited for the edge"
        like = requests.post(f"{app}/api/articles/{article['id']}/like/", headers={"Authorization": f"Token {token}"},
                             timeout=10)
        assert like.status_code in (200, 201), like.text
        assert wait_until(lambda: purges_ok(requests.get(app + "/metrics", timeout=10).text) > before, 60,
                          interval=0.2), "the app's /metrics never showed the worker's purge"
        assert pending_purges(env["DATABASE_URL"]) == 0
        counted_by = purges_by_pid(clone / ".run" / "prometheus")
        assert set(counted_by) & worker_pids, f"purges counted by {counted_by}, not the worker {worker_pids}"
        assert requests.get(detail_url, timeout=10).json()["title"] == new_title, "the edge was purged"
    finally:
        down = run_make("down", clone, env, timeout=180)
    assert down.returncode == 0, down.stderr
    assert started, "make up started processes"
    left = {pid for pid in started if alive(pid)}
    assert not left, f"make down left processes running: {left}"
    assert not [p for p in ports if listening(p)], "a port of the stack still answers"
    assert not [p for p in PIDFILES if (clone / p).exists()]
