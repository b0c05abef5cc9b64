"""Durability with real processes: a writer whose broker is unreachable, and a real Celery worker."""

import subprocess
import sys
import time

import pytest
from django.db import transaction

from cdn.models import PurgeOutbox
from cdn.purges import enqueue_purge
from cdn.tasks import purge_outbox_redrive
from tests.support import REPO, celery_worker, child_env, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WRITER = """
import django
django.setup()
from django.db import transaction
from articles.models import Category
from cdn.purges import enqueue_purge
with transaction.atomic():
    category = Category.objects.create(name="Broker down", slug="broker-down")
    ids = enqueue_purge(["category:%d" % category.pk, "feed:category:%d" % category.pk])
print("saved", category.pk, ids)
"""


def test_broker_unreachable_while_saving_then_redrive_delivers(settings):
    settings.CDN_BACKENDS = {"default": {"BACKEND": "cdn.backends.dummy.DummyBackend"}}
    settings.CDN_OUTBOX = {**settings.CDN_OUTBOX, "REDRIVE_AFTER": 0.0}  # the beat's run, a second later
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    writer = subprocess.run(
        [sys.executable, "-c", WRITER],
        cwd=REPO,
        env=child_env(CELERY_BROKER_URL=dead_broker),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert writer.returncode == 0, writer.stderr[-2000:]
    assert writer.stdout.startswith("saved")  # the save succeeded
    assert "broker unreachable" in writer.stderr
    category_id = int(writer.stdout.split()[1])
    rows = list(PurgeOutbox.objects.all())
    # One row for the transaction: our enqueue joined the app's own invalidation of the category.
    assert [(r.status, r.attempts, r.delivered_to) for r in rows] == [("pending", 0, [])]
    assert f"feed:category:{category_id}" in rows[0].tags

    # The broker is back: the beat's re-drive delivers what was left pending.
    assert purge_outbox_redrive()["delivered"] == len(rows)
    assert set(PurgeOutbox.objects.values_list("status", flat=True)) == {"done"}
    assert PurgeOutbox.objects.get().delivered_to == ["default"]  # this process's backends


@pytest.fixture
def edge_for_worker(varnish):
    """The started Varnish (tests/cdn/conftest.py) in front of `origin` that the worker purges."""
    return varnish


@pytest.fixture
def celery_worker_process(edge_for_worker, tmp_path):
    """`celery -A newsite worker` (solo pool) on this test's broker and database, purging
    through VARNISH_PURGE_URL to `edge_for_worker`."""
    env = child_env(VARNISH_PURGE_URL=edge_for_worker.url)
    with celery_worker(env, tmp_path / "celery-worker.log", name="cdn-test") as proc:
        yield proc


def test_a_real_worker_delivers_the_purge_after_commit(
    settings, origin, edge_for_worker, celery_worker_process
):
    edge = edge_for_worker
    settings.CDN_BACKENDS = {
        "varnish": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": edge.url}
    }
    origin.page("/api/categories/world/articles/", "old feed", tags=["feed:category:4", "article:8"])
    assert edge.get("/api/categories/world/articles/").headers["X-Cache-Edge"] == "MISS"
    origin.page("/api/categories/world/articles/", "new feed", tags=["feed:category:4", "article:8"])
    assert edge.get("/api/categories/world/articles/").text == "old feed"

    with transaction.atomic():
        [row_id] = enqueue_purge(["article:8"])
    # After commit the drain task went to the broker; the worker process delivers it.

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and PurgeOutbox.objects.get(pk=row_id).status != "done":
        time.sleep(0.1)
    row = PurgeOutbox.objects.get(pk=row_id)
    assert (row.status, row.attempts) == ("done", 1), row.last_error
    fresh = edge.get("/api/categories/world/articles/")
    assert (fresh.text, fresh.headers["X-Cache-Edge"]) == ("new feed", "MISS")
