"""One transaction, one invalidation: a delete cascading to N comments and likes writes one outbox
row, sends one drain task and runs invalidate.lua once (issue 15.4). Counted on a private Redis
(INFO commandstats, the broker's queue) by a real writer process, nothing instrumented."""

import subprocess
import sys

import pytest
from django.db import transaction

from articles.models import Comment, Like
from caching import invalidate_tags_on_commit
from cdn.models import PurgeOutbox
from tests.factories import make_article, make_user
from tests.support import REPO, app_env, require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)

DELETE = """
import django
django.setup()
from articles.models import Article
from articles.services import article_delete
article_delete(article=Article.objects.get(pk={pk}))
print("deleted")
"""


def commandstats(client) -> dict[str, int]:
    """Successful calls per command (a first EVALSHA answered NOSCRIPT, then loaded, is one)."""
    return {
        name.removeprefix("cmdstat_"): stats["calls"] - stats.get("failed_calls", 0)
        for name, stats in client.info("commandstats").items()
    }


def test_deleting_an_article_with_comments_and_likes_is_one_invalidation(private_redis):
    require_postgresql()
    article = make_article(title="Cascade")
    for i in range(20):
        user = make_user()
        Comment.objects.create(article=article, user=user, body=f"comment {i}")
        Like.objects.create(article=article, user=user)
    before_rows = dict(PurgeOutbox.objects.values_list("pk", "tags"))
    cache_db = private_redis.client()
    broker_db = type(cache_db)(port=private_redis.port, db=1)
    before = commandstats(cache_db)

    writer = subprocess.run(
        [sys.executable, "-c", DELETE.format(pk=article.pk)], cwd=REPO, capture_output=True, text=True, timeout=60,
        env=app_env(REDIS_URL=private_redis.url, CELERY_BROKER_URL=f"redis://127.0.0.1:{private_redis.port}/1"),
    )

    assert writer.returncode == 0 and "deleted" in writer.stdout, writer.stderr[-2000:]
    # One row written: a new one, or (CDN_OUTBOX COALESCE) a count purge still waiting in its
    # window that the delete joined and widened.
    rows = [row for row in PurgeOutbox.objects.all() if before_rows.get(row.pk) != row.tags]
    assert len(rows) == 1, [r.tags for r in rows]
    assert f"article:{article.pk}" in rows[0].tags
    queued = [key for key in broker_db.keys("*") if broker_db.type(key) == b"list"]
    assert sum(broker_db.llen(key) for key in queued) == 1  # one drain task
    after = commandstats(cache_db)
    scripts = after.get("evalsha", 0) - before.get("evalsha", 0) + after.get("eval", 0) - before.get("eval", 0)
    assert scripts == 1  # one invalidate.lua for the whole delete


def test_invalidations_of_one_transaction_join_and_a_rolled_back_savepoint_is_not_lost():
    with transaction.atomic():
        invalidate_tags_on_commit(["article:1"])
        invalidate_tags_on_commit(["article:1", "comment:1"])
        try:
            with transaction.atomic():
                invalidate_tags_on_commit(["article:2"])  # this savepoint rolls back
                raise RuntimeError
        except RuntimeError:
            pass
        with transaction.atomic():
            invalidate_tags_on_commit(["article:2", "feed:home"])  # a savepoint that commits
        callbacks = [func for _sids, func, _robust in transaction.get_connection().run_on_commit]
    [row] = PurgeOutbox.objects.all()
    assert row.tags == ["article:1", "article:2", "comment:1", "feed:home"]
    # On commit: the transaction's one accumulator runs the app tiers (first, every tag, once),
    # then the row's drain (once); the rest are no-op markers of the row's widening writes.
    assert type(callbacks[0]).__name__ == "TransactionInvalidation"
    assert sorted(callbacks[0].tags) == ["article:1", "article:2", "comment:1", "feed:home"]
    after_app_tiers = [getattr(cb, "__name__", "") for cb in callbacks[0]._after_app_tiers]
    assert (after_app_tiers + [getattr(cb, "__name__", "") for cb in callbacks]).count("drain") == 1
    assert after_app_tiers[0] == "drain"
    assert sum(type(cb).__name__ == "TransactionInvalidation" for cb in callbacks) == 1

    with transaction.atomic():
        invalidate_tags_on_commit(["article:3"])  # the next transaction has a row of its own
    assert PurgeOutbox.objects.count() == 2


def test_a_row_written_in_a_savepoint_that_rolls_back_is_not_delivered(monkeypatch):
    # The transaction's accumulator was opened without a row (no CDN hook here): a row first
    # written in a savepoint inside it is delivered by that savepoint's own callback, so a
    # rollback of the savepoint takes the row and its delivery; the next ask writes a new row.
    from caching import invalidation
    from cdn import purges

    delivered = []
    monkeypatch.setattr(invalidation, "on_invalidate", [])
    monkeypatch.setattr(purges, "deliver_committed", lambda row_id, **kwargs: delivered.append(row_id))
    with transaction.atomic():
        invalidate_tags_on_commit(["article:1"])
        try:
            with transaction.atomic():
                purges.enqueue_purge(["article:2"])
                raise RuntimeError
        except RuntimeError:
            pass
        [kept] = purges.enqueue_purge(["article:3"])
    assert delivered == [kept]
    assert list(PurgeOutbox.objects.values_list("tags", flat=True)) == [["article:3"]]
