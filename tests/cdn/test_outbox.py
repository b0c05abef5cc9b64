"""The outbox: rows commit with the change, drains merge and deliver, failures back off, nothing
is delivered twice concurrently, the admin shows and retries the backlog."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from caching.invalidation import invalidate_tags_on_commit
from cdn import outbox, purges
from cdn.backends import dummy
from cdn.models import PurgeOutbox
from cdn.outbox import backoff_seconds, drain_outbox
from cdn.purges import enqueue_purge
from cdn.tasks import purge_outbox_redrive
from tests.cdn.servers import Varnish
from tests.support import free_port

TWO_DUMMIES = {
    "edge": {"BACKEND": "cdn.backends.dummy.DummyBackend"},
    "cdn": {"BACKEND": "cdn.backends.dummy.DummyBackend"},
}


@pytest.fixture
def two_dummies(settings):
    settings.CDN_BACKENDS = TWO_DUMMIES
    return settings


@pytest.mark.django_db
def test_rows_commit_or_roll_back_with_the_change(two_dummies, django_capture_on_commit_callbacks):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_purge(["article:1"])
        raise RuntimeError("the write failed")
    assert PurgeOutbox.objects.count() == 0

    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        ids = enqueue_purge(["article:1", "feed:home", "article:1"], urls=["https://x.example/a/"])
    rows = list(PurgeOutbox.objects.all())
    assert ids == [r.pk for r in rows]  # one row, whatever the number of backends
    assert [(r.tags, r.urls, r.status, r.delivered_to) for r in rows] == [
        (["article:1", "feed:home"], ["https://x.example/a/"], "pending", []),
    ]
    assert len(callbacks) == 1  # the drain is scheduled after commit, once per transaction
    assert enqueue_purge([]) == []


@pytest.mark.django_db
def test_tag_invalidation_reaches_the_outbox_through_the_caching_hook(
    two_dummies, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        invalidate_tags_on_commit(["article:9", "feed:home"])
    assert list(PurgeOutbox.objects.values_list("tags", flat=True)) == [["article:9", "feed:home"]]


@pytest.mark.django_db
@pytest.mark.django_db(transaction=True)
def test_drain_merges_pending_rows_per_backend_and_counts(two_dummies):
    for tags in (["article:1"], ["article:2", "feed:home"], ["feed:home"]):
        enqueue_purge(tags)  # three transactions (autocommit): three rows
    ok_before = (
        REGISTRY.get_sample_value("newsite_cdn_purges_total", {"backend": "edge", "result": "ok"}) or 0
    )
    lag_before = REGISTRY.get_sample_value("newsite_cache_invalidation_lag_seconds_count", {"stage": "cdn"}) or 0

    report = drain_outbox()

    assert len(report.delivered) == 3 and not report.failed
    assert sorted(dummy.PURGED) == [
        ("cdn", "tags", ["article:1", "article:2", "feed:home"]),
        ("edge", "tags", ["article:1", "article:2", "feed:home"]),
    ]
    assert set(PurgeOutbox.objects.values_list("status", "attempts")) == {("done", 1)}
    assert [r.delivered_to for r in PurgeOutbox.objects.all()] == [["cdn", "edge"]] * 3
    assert PurgeOutbox.objects.filter(delivered_at__isnull=True).count() == 0
    assert (
        REGISTRY.get_sample_value("newsite_cdn_purges_total", {"backend": "edge", "result": "ok"})
        == ok_before + 1
    )
    assert REGISTRY.get_sample_value("newsite_outbox_pending") == 0
    # commit -> each backend acknowledged: one observation per row and backend
    assert REGISTRY.get_sample_value(
        "newsite_cache_invalidation_lag_seconds_count", {"stage": "cdn"}) == lag_before + 3 * 2
    assert drain_outbox().delivered == []  # idempotent: nothing left to do


@pytest.mark.django_db(transaction=True)
def test_drain_by_ids_leaves_other_rows(two_dummies):
    first = enqueue_purge(["article:1"])
    enqueue_purge(["article:2"])
    assert sorted(drain_outbox(first).delivered) == sorted(first)
    assert PurgeOutbox.objects.filter(status="pending").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_redrive_takes_rows_once_the_writers_own_hand_off_had_its_chance(two_dummies, settings):
    """The beat's re-drive (every second) leaves a row younger than REDRIVE_AFTER to the
    writer's edge acknowledgement and drain task, and delivers it once older: a writer cut off
    from Redis and the broker as it committed is covered within about REDRIVE_AFTER + 1 s."""
    settings.CDN_OUTBOX = {**settings.CDN_OUTBOX, "REDRIVE_AFTER": 60.0}
    [row_id] = enqueue_purge(["article:1"])
    assert purge_outbox_redrive() == {"delivered": 0, "failed": 0, "dead": 0}  # still the writer's
    PurgeOutbox.objects.filter(pk=row_id).update(created_at=timezone.now() - timedelta(seconds=61))
    assert purge_outbox_redrive() == {"delivered": 1, "failed": 0, "dead": 0}
    assert PurgeOutbox.objects.get(pk=row_id).status == "done"


@pytest.mark.django_db
def test_failed_delivery_records_the_error_and_backs_off(settings):
    settings.CDN_BACKENDS = {
        "varnish": {
            "BACKEND": "cdn.backends.varnish.VarnishBackend",
            "LOCATION": f"http://127.0.0.1:{free_port()}",
            "TIMEOUT": 1,
        },
    }
    [row_id] = enqueue_purge(["article:1"])

    report = drain_outbox()

    row = PurgeOutbox.objects.get(pk=row_id)
    assert report.failed == [row_id]
    assert (row.status, row.attempts) == ("pending", 1)
    assert "ConnectionError" in row.last_error
    assert row.next_attempt_at > timezone.now()
    assert REGISTRY.get_sample_value("newsite_outbox_pending") == 1
    assert purge_outbox_redrive() == {"delivered": 0, "failed": 0, "dead": 0}  # not due yet


def test_backoff_doubles_and_is_capped(settings):
    settings.CDN_OUTBOX = {"BACKOFF_BASE": 2.0, "BACKOFF_MAX": 60.0}
    assert [round(backoff_seconds(n) / base) for n, base in ((1, 2), (2, 4), (3, 8), (10, 60))] == [
        1,
        1,
        1,
        1,
    ]


@pytest.mark.django_db
def test_a_row_goes_to_the_backends_configured_at_delivery_and_records_who_confirmed(settings, fast_outbox):
    settings.CDN_BACKENDS = {"default": {"BACKEND": "cdn.backends.dummy.DummyBackend"}}
    [row_id] = enqueue_purge(["article:1"])  # the writer knows only the dummy default
    down = f"http://127.0.0.1:{free_port()}"
    settings.CDN_BACKENDS = {
        "edge": {"BACKEND": "cdn.backends.dummy.DummyBackend"},
        "varnish": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": down, "TIMEOUT": 1},
    }
    report = drain_outbox()
    row = PurgeOutbox.objects.get(pk=row_id)
    assert report.failed == [row_id] and (row.status, row.delivered_to) == ("pending", ["edge"])
    assert row.last_error.startswith("varnish: ") and "ConnectionError" in row.last_error
    assert dummy.PURGED == [("edge", "tags", ["article:1"])]

    settings.CDN_BACKENDS = {"edge": TWO_DUMMIES["edge"]}  # varnish removed: edge has it already
    dummy.PURGED.clear()
    assert drain_outbox().delivered == [row_id]
    assert dummy.PURGED == []  # not purged twice from the backend that confirmed it
    row = PurgeOutbox.objects.get(pk=row_id)
    assert (row.status, row.delivered_to, row.attempts) == ("done", ["edge"], 2)


@pytest.mark.django_db
def test_rows_give_up_after_max_attempts_and_the_admin_retries_them(settings, admin_client):
    settings.CDN_OUTBOX = {"MAX_ATTEMPTS": 1, "BACKOFF_BASE": 0.0}
    settings.CDN_BACKENDS = {
        "varnish": {
            "BACKEND": "cdn.backends.varnish.VarnishBackend",
            "LOCATION": f"http://127.0.0.1:{free_port()}",
        }
    }
    [row_id] = enqueue_purge(["article:1"])
    drain_outbox()
    assert PurgeOutbox.objects.get(pk=row_id).status == "dead"

    page = admin_client.get("/admin/cdn/purgeoutbox/?status__exact=dead")
    assert page.status_code == 200 and b"article:1" in page.content
    response = admin_client.post(
        "/admin/cdn/purgeoutbox/", {"action": "retry_selected", "_selected_action": [row_id]}, follow=True
    )
    assert response.status_code == 200
    row = PurgeOutbox.objects.get(pk=row_id)
    assert row.status == "pending" and row.next_attempt_at <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_concurrent_drains_skip_locked_rows(two_dummies):
    [row_id] = enqueue_purge(["article:1"])
    enqueue_purge(["article:2"])
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                list(PurgeOutbox.objects.select_for_update().filter(pk=row_id))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        report = drain_outbox()  # does not wait for the lock, does not deliver the locked row
        assert row_id not in report.delivered and len(report.delivered) == 1
    finally:
        release.set()
        holder.join(10)
    assert drain_outbox().delivered == [row_id]
    assert PurgeOutbox.objects.filter(status="done").count() == 2


@pytest.mark.slow
@pytest.mark.django_db
def test_varnish_down_while_purging_then_delivered_when_it_returns(settings, fast_outbox, origin):
    edge = Varnish(origin.port)
    settings.CDN_BACKENDS = {
        "varnish": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": edge.url}
    }
    try:
        origin.page("/api/articles/3/", "old title", tags=["article:3"])
        [row_id] = enqueue_purge(["article:3"])

        drain_outbox()  # Varnish is down
        drain_outbox()
        row = PurgeOutbox.objects.get(pk=row_id)
        assert (row.status, row.attempts) == ("pending", 2) and "ConnectionError" in row.last_error

        edge.start()
        assert edge.get("/api/articles/3/").text == "old title"
        origin.page("/api/articles/3/", "new title", tags=["article:3"])
        assert edge.get("/api/articles/3/").headers["X-Cache-Edge"] == "HIT"

        assert outbox.drain_outbox().delivered == [row_id]
        assert PurgeOutbox.objects.get(pk=row_id).attempts == 3
        fresh = edge.get("/api/articles/3/")
        assert (fresh.text, fresh.headers["X-Cache-Edge"]) == ("new title", "MISS")
    finally:
        edge.close()


@pytest.mark.django_db
def test_retry_now_makes_done_rows_due_again(two_dummies):
    enqueue_purge(["article:1"])
    drain_outbox()
    count = purges.retry_now(PurgeOutbox.objects.all())
    assert count == 1
    row = PurgeOutbox.objects.get()
    assert row.status == "pending" and row.next_attempt_at <= timezone.now() + timedelta(seconds=1)
    assert row.delivered_to == []  # purged from every backend again


@pytest.mark.django_db
def test_eager_drain_task_does_not_loop_on_a_failing_backend(settings, fast_outbox):
    from cdn.tasks import purge_outbox_drain
    from newsite.celery import app as celery_app

    settings.CDN_BACKENDS = {
        "varnish": {
            "BACKEND": "cdn.backends.varnish.VarnishBackend",
            "LOCATION": f"http://127.0.0.1:{free_port()}",
        }
    }
    ids = enqueue_purge(["article:1"])
    previous, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
    try:
        result = purge_outbox_drain.apply(args=(ids,)).get()
    finally:
        celery_app.conf.task_always_eager = previous
    assert result == {"delivered": 0, "failed": 1, "dead": 0}
    assert PurgeOutbox.objects.get().attempts == 1


@pytest.mark.django_db
def test_outbox_backlog_for_the_health_page(two_dummies):
    assert outbox.outbox_backlog() == {"pending": 0, "dead": 0, "oldest_pending_seconds": None}
    enqueue_purge(["article:1"])
    PurgeOutbox.objects.create(tags=["x"], status="dead")
    backlog = outbox.outbox_backlog()
    assert (backlog["pending"], backlog["dead"]) == (1, 1) and backlog["oldest_pending_seconds"] >= 0
    assert REGISTRY.get_sample_value("newsite_outbox_pending") == 1
