"""warm_cache runs once at a time: two deploys at once warm once (a Redis lock, like the
view-count flush's)."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from articles import keys, warm
from caching import engine
from tests.factories import make_article, make_author, make_category
from tests.support import REPO, app_env, require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_concurrent_warm_cache_exits_at_once(settings):
    require_postgresql()
    settings.WARM_CACHE_TOP_ARTICLES = 3
    author, category = make_author(), make_category(name="World")
    for i in range(3):
        make_article(author=author, category=category, ago=timedelta(minutes=i + 1))
    holding, release = threading.Event(), threading.Event()

    def progress(paths):  # the first run stops after its first page until the second has run
        for i, path in enumerate(paths):
            yield path
            if i == 0:
                holding.set()
                release.wait(60)

    first: dict = {}
    runner = threading.Thread(target=lambda: first.update(warm.warm_cache(progress=progress)))
    runner.start()
    try:
        assert holding.wait(60)
        assert engine.redis_client().exists(keys.warm_cache_lock_key())
        # A second deploy: a real manage.py process on the same database and Redis.
        second = subprocess.run(
            [sys.executable, "manage.py", "warm_cache"], cwd=REPO, env=app_env(),
            capture_output=True, text=True, timeout=60,
        )
        with pytest.raises(warm.WarmCacheLocked):  # and a task in this process
            warm.warm_cache()
    finally:
        release.set()
        runner.join(60)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "another warm_cache run holds the lock" in second.stderr
    assert "pages in" not in second.stdout  # it warmed nothing
    assert first["paths"] == len(warm.warm_paths())
    assert warm.last_run()["paths"] == first["paths"]  # the only report is the first run's
    assert not engine.redis_client().exists(keys.warm_cache_lock_key())  # released
    # Once the first run is over, the next one runs.
    assert warm.warm_cache()["paths"] == first["paths"]
