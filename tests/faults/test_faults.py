"""The fault suite, short (issue 15): real processes stopped, killed and restarted under a reader
load, a writer editing during the fault. Asserted: no 5xx but 503, nothing lost, nothing stale
after recovery, nothing dead. Never a timing. The long version is `make bench
BENCH_ARGS="--scenario faults"`."""

import subprocess
import sys
import time

import pytest
import requests

from cdn.models import PurgeOutbox
from tests.factories import make_article
from tests.faults.stack import HTTP_TIMEOUT, Blackhole, Load, server_errors, title_of, wait_done
from tests.support import REPO, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WRITER = """
import django
django.setup()
from articles.models import Article
from articles.services import article_update
article_update(article=Article.objects.get(pk={pk}), data={{"title": {title!r}}})
print("saved")
"""


def patch(stack, token, article_id, title):
    response = requests.patch(f"{stack.app.url}/api/articles/{article_id}/", json={"title": title},
                              headers={"Authorization": f"Token {token}"}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text[:500]


def rows_after(last_pk):
    return list(PurgeOutbox.objects.filter(pk__gt=last_pk).order_by("pk"))


def last_pk():
    return PurgeOutbox.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def seen_everywhere(stack, path, bursts=6):
    """Titles answered for `path` by every app worker (bursts of GETs) and by the edge, with the
    app tier that served each."""
    seen = set()
    for _ in range(bursts):
        for _ in range(8):
            response = requests.get(stack.app.url + path, timeout=HTTP_TIMEOUT)
            seen.add(("app", response.headers.get("X-Cache"), title_of(response)))
    response = requests.get(stack.edge.url + path, timeout=HTTP_TIMEOUT)
    seen.add(("edge", response.headers.get("X-Cache-Edge"), title_of(response)))
    return seen


def warm(stack, path):
    for _ in range(30):
        requests.get(stack.app.url + path, timeout=HTTP_TIMEOUT)
    assert wait_until(lambda: requests.get(stack.edge.url + path, timeout=HTTP_TIMEOUT).headers.get("X-Cache-Edge") == "HIT", 10)


def stale(seen, old_title):
    return sorted(s for s in seen if s[2] == old_title)


def test_an_edit_by_a_process_that_cannot_reach_redis_leaves_nothing_stale(stack):
    """Defect 1 (and 3): a manage.py-style writer whose Redis is unreachable and which has no CDN
    settings edits an article and exits. The worker applies the invalidation to L2 and every L1
    before it purges its Varnish: no tier keeps the old title."""
    article = make_article(title="Before the outage")
    path = f"/api/articles/{article.pk}/"
    warm(stack, path)
    assert stale(seen_everywhere(stack, path), "Before the outage")  # cached in every tier
    since = last_pk()

    writer = subprocess.run(
        [sys.executable, "-c", WRITER.format(pk=article.pk, title="Edited while Redis was away")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**stack.env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},  # nothing listens there
    )

    assert writer.returncode == 0 and "saved" in writer.stdout, writer.stderr[-3000:]
    rows = wait_done([row.pk for row in rows_after(since)])
    assert rows and {(r.status, tuple(r.delivered_to)) for r in rows} == {("done", ("varnish",))}, \
        [(r.status, r.delivered_to, r.last_error) for r in rows]
    seen = seen_everywhere(stack, path)
    assert stale(seen, "Before the outage") == [], seen
    assert ("app", "HIT-L1", "Edited while Redis was away") in seen or any(s[2] == "Edited while Redis was away" for s in seen)


def test_redis_killed_then_restarted_empty(stack, token):
    article = make_article(title="Redis up")
    path = f"/api/articles/{article.pk}/"
    warm(stack, path)
    load = Load([stack.app.url + path, stack.app.url + "/api/articles/", stack.edge.url + "/api/articles/"]).start()
    since = last_pk()
    try:
        stack.cache.stop()
        patch(stack, token, article.pk, "Edited while Redis was down")
        during = load.snapshot()
        assert wait_until(lambda: sum(load.snapshot().values()) > sum(during.values()) + 20, 30)
        stack.cache.start()  # empty: nothing saved
        rows = wait_done([row.pk for row in rows_after(since)])
        # Recovered: every process has its L1 subscription back (each clears L1 when it does;
        # until then a process serves what it filled from PostgreSQL while Redis was away).
        assert wait_until(stack.every_worker_subscribed, 30)
    finally:
        statuses = load.stop()
    assert server_errors(statuses) == {} and not any(str(k).startswith("error") for k in statuses), statuses
    assert {r.status for r in rows} == {"done"}, [(r.status, r.last_error) for r in rows]
    seen = seen_everywhere(stack, path)
    assert stale(seen, "Redis up") == [], seen


def test_varnish_unreachable_then_back(stack, token):
    article = make_article(title="Edge up")
    path = f"/api/articles/{article.pk}/"
    warm(stack, path)
    since = last_pk()
    load = Load([stack.app.url + path, stack.app.url + "/api/articles/"]).start()
    try:
        stack.edge.stop()
        patch(stack, token, article.pk, "Edited while the edge was down")
        [row] = rows_after(since)
        assert wait_until(lambda: PurgeOutbox.objects.get(pk=row.pk).attempts >= 2, 30)  # tried, failed, queued
        row.refresh_from_db()
        assert row.status == "pending" and "varnish" in row.last_error
        stack.edge.start()
        [row] = wait_done([row.pk])
    finally:
        statuses = load.stop()
    assert server_errors(statuses) == {} and all(isinstance(k, int) for k in statuses), statuses
    assert row.status == "done" and row.delivered_to == ["varnish"]
    assert not PurgeOutbox.objects.filter(status="dead").exists()
    assert stale(seen_everywhere(stack, path), "Edge up") == []


def test_broker_down_then_the_worker_killed_mid_drain(stack, token):
    article = make_article(title="Broker up")
    path = f"/api/articles/{article.pk}/"
    warm(stack, path)
    since = last_pk()
    stack.broker.stop()
    for i in range(3):  # edits while the broker is down: rows written, drains not sent
        patch(stack, token, article.pk, f"Edited while the broker was down {i}")
    rows = rows_after(since)
    assert len(rows) == 3 and {r.status for r in PurgeOutbox.objects.filter(pk__in=[r.pk for r in rows])} == {"pending"}
    stack.broker.start()

    # The worker's purges now go to a host that accepts and never answers: kill -9 it mid-drain.
    stack.stop_worker()
    hole = Blackhole()
    try:
        stack.start_worker(purge_url=hole.url)
        stack.redrive()
        assert wait_until(lambda: hole.connections > 0, 30)  # the drain is sending its purge
        stack.kill_worker()
    finally:
        hole.close()
    assert {r.status for r in PurgeOutbox.objects.filter(pk__in=[r.pk for r in rows])} == {"pending"}

    stack.start_worker()  # a new worker, the real edge; the beat's re-drive finds the rows
    stack.redrive()
    done = wait_done([r.pk for r in rows])
    assert {(r.status, tuple(r.delivered_to)) for r in done} == {("done", ("varnish",))}, \
        [(r.status, r.last_error) for r in done]
    seen = seen_everywhere(stack, path)
    assert {s[2] for s in seen} == {"Edited while the broker was down 2"}, seen


def test_a_web_worker_killed_under_load(stack):
    import os
    import signal

    article = make_article(title="Steady")
    path = f"/api/articles/{article.pk}/"
    warm(stack, path)
    metrics_before = requests.get(stack.app.url + "/metrics", timeout=HTTP_TIMEOUT)
    assert metrics_before.status_code == 200
    before = Load([stack.app.url + path]).start()
    pids = stack.app_worker_pids()
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    assert wait_until(lambda: len(set(stack.app_worker_pids()) - {pids[0]}) == 2, 30)  # respawned
    mark = sum(before.snapshot().values())
    assert wait_until(lambda: sum(before.snapshot().values()) > mark + 50, 30)
    statuses = before.stop()
    # The requests the killed worker was serving lost their connection; none got a 5xx.
    assert server_errors(statuses) == {}, statuses
    assert statuses[200] > 50
    after = Load([stack.app.url + path], threads=2).start()
    time.sleep(0)
    assert wait_until(lambda: after.snapshot()[200] >= 40, 30)
    assert set(after.stop()) == {200}  # its peers (and its replacement) serve everything
    metrics = requests.get(stack.app.url + "/metrics", timeout=HTTP_TIMEOUT)
    assert metrics.status_code == 200 and "newsite_cache_requests_total" in metrics.text


def _l1_clears(stack) -> dict[int, int]:
    """L1 clears of each app worker (/health/cache/, bursts until every pid answered)."""
    pids = set(stack.app_worker_pids())
    seen: dict[int, int] = {}
    for _ in range(20):
        for _ in range(8):
            doc = requests.get(stack.app.url + "/health/cache/", timeout=HTTP_TIMEOUT).json()
            seen[doc["pid"]] = doc["l1"]["clears"]
        if pids <= set(seen):
            break
    return {pid: seen[pid] for pid in pids if pid in seen}


def _restart_from_an_older_snapshot(stack, token, title_before, title_after):
    """An article cached in every tier; Redis SAVEs; the article is edited (its invalidation
    reaches L2, every L1 and, through the outbox, the edge); Redis is stopped and started from
    that snapshot (L2 holds the old value again, the invalidation sequence is back in the
    past), under a reader load. Returns (path, L1 clears before, after, statuses, the last
    outbox row before the restart)."""
    article = make_article(title=title_before)
    path = f"/api/articles/{article.pk}/"
    warm(stack, path)
    load = Load([stack.app.url + path, stack.edge.url + path]).start()
    dump = stack.cache.dir / "dump.rdb"
    try:
        clears_before = _l1_clears(stack)
        since = last_pk()
        assert stack.cache.client().execute_command("SAVE")
        patch(stack, token, article.pk, title_after)
        assert {r.status for r in wait_done([row.pk for row in rows_after(since)])} == {"done"}
        assert {s[2] for s in seen_everywhere(stack, path)} == {title_after}  # before the restart
        before_restart = last_pk()
        stack.cache.stop()
        stack.cache.start()  # loads dump.rdb: the state of the SAVE
        assert wait_until(stack.every_worker_subscribed, 30)
        clears_after = _l1_clears(stack)
    finally:
        dump.unlink(missing_ok=True)  # the other tests' restarts stay empty
        statuses = load.stop()
    return path, clears_before, clears_after, statuses, before_restart


def test_redis_from_an_older_snapshot_clears_every_l1(stack, token):
    _path, before, after, statuses, _last = _restart_from_an_older_snapshot(stack, token, "Snapshot A", "Snapshot A edited")
    assert server_errors(statuses) == {}, statuses
    assert set(after) == set(before) and all(after[pid] > before[pid] for pid in before), (before, after)


def test_redis_from_an_older_snapshot_leaves_nothing_stale(stack, token):
    """The first subscriber to see the sequence below its high-water mark re-applies the recent
    outbox rows (L2, every L1, then the edge through a new row); every worker reports its
    subscription up only once that is done."""
    path, _before, _after, statuses, last = _restart_from_an_older_snapshot(stack, token, "Snapshot B", "Snapshot B edited")
    assert server_errors(statuses) == {}, statuses
    rows = rows_after(last)  # written by the re-application, with the edit's tags
    assert rows and f"article:{path.split('/')[-2]}" in {tag for row in rows for tag in row.tags}, rows
    assert {r.status for r in wait_done([r.pk for r in rows])} == {"done"}
    seen = seen_everywhere(stack, path)
    assert stale(seen, "Snapshot B") == [], seen
