"""The view-count flush and warm_cache run by a real Celery worker on the real Redis broker."""

import pytest

from articles import counters, warm
from articles.models import Article
from articles.tasks import flush_view_counts_task, warm_cache_task
from tests.factories import make_article
from tests.support import celery_worker, child_env, wait_until


@pytest.fixture
def worker(tmp_path):
    with celery_worker(child_env(), tmp_path / "worker.log", name="articles-test") as proc:
        yield proc


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_flushes_counts_and_warms(worker):
    article = make_article()
    for _ in range(3):
        counters.record_view(article_id=article.id)
    flush_view_counts_task.delay()
    assert wait_until(lambda: Article.objects.get(pk=article.id).view_count == 3, timeout=30, interval=0.2)
    warm_cache_task.delay()
    assert wait_until(lambda: warm.last_run() is not None, timeout=30, interval=0.2)
    assert warm.last_run()["by_status"].get("200", 0) > 0
