"""`warm_cache --all`: every published article's JSON detail filled in bulk (issue 17.3) - the
same entry the view stores, one query per batch, and never an old version when an editor races
the warm."""

import json
import random
import subprocess
import sys
import threading
import time
from datetime import timedelta

import orjson
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from articles import services, warm
from articles.models import Article, Comment, Like
from caching import engine, fetcher, http, keys
from caching.app_data import peek
from tests.factories import make_article, make_author, make_category, make_user
from tests.support import REPO, app_env, require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app_tiers_only():
    """The races are about L1 and L2 (the warm does not touch the edge): the CDN outbox hook is
    set aside, so the writers' hundreds of edits leave no purge tasks queued on the test broker
    for a later test's worker to chew through."""
    from caching.invalidation import on_invalidate

    saved = list(on_invalidate)
    on_invalidate.clear()
    yield
    on_invalidate[:] = saved


def _stored(article_id: int):
    """The ResponseEntry L2 holds for /api/articles/<id>/ (None: nothing stored)."""
    stored = peek(warm.detail_key(article_id))
    return stored.value if stored is not None else None


def _without_last_modified(entry) -> dict:
    """The entry's fields but Last-Modified, which is the fill's second (max(updated_at, now))."""
    return {
        "status": entry[http.STATUS], "body": entry[http.BODY], "content_type": entry[http.CONTENT_TYPE],
        "etag": entry[http.ETAG], "cache_control": entry[http.CACHE_CONTROL], "tags": entry[http.TAGS],
        "headers": tuple(item for item in entry[http.HEADER_STORE] if item[0] != "Last-Modified"),
    }


def _site(count: int, *, drafts: int = 0):
    author, category = make_author(), make_category(name="World")
    articles = [make_article(author=author, category=category, ago=timedelta(minutes=i + 1)) for i in range(count)]
    for _ in range(drafts):
        make_article(author=author, category=category, published=False)
    return articles


def test_a_warmed_entry_is_the_entry_the_view_stores():
    require_postgresql()
    article = _site(1)[0]
    reader = make_user()
    Comment.objects.create(article=article, user=reader, body="First!")
    Like.objects.create(article=article, user=reader)
    client = Client()
    viewed = client.get(f"/api/articles/{article.id}/")
    assert viewed.status_code == 200 and viewed["X-Cache"] == "MISS"
    by_view = _stored(article.id)
    assert by_view is not None  # the middleware's key is the one warm_cache fills
    engine.redis_client().delete(keys.value_key(fetcher.current().namespace, warm.detail_key(article.id)))
    fetcher.clear_local()

    report = warm.warm_articles()
    assert report["by_source"] == {"MISS": 1} and report["refused"] == 0
    by_warm = _stored(article.id)
    assert _without_last_modified(by_warm) == _without_last_modified(by_view)
    assert abs(by_warm[http.LAST_MODIFIED] - by_view[http.LAST_MODIFIED]) <= 5
    assert orjson.loads(by_warm[http.BODY])["comment_count"] == 1 and orjson.loads(by_warm[http.BODY])["like_count"] == 1

    served = client.get(f"/api/articles/{article.id}/")
    assert served["X-Cache"] == "HIT-L2" and served.content == viewed.content
    for header in ("Content-Type", "Cache-Control", "Surrogate-Key", "Cache-Tag", "ETag", "Vary"):
        assert served[header] == viewed[header], header


def test_one_query_per_batch_and_none_for_what_is_already_fresh():
    require_postgresql()
    articles = _site(7, drafts=1)
    with CaptureQueriesContext(connection) as queries:
        report = warm.warm_articles(batch_size=3)
    # One for the ids, then one per batch (3 + 3 + 1 articles): no N+1 for author, category or counts.
    assert len(queries) == 1 + 3, [q["sql"][:120] for q in queries]
    assert report["articles"] == 7 and report["batches"] == 3 and report["by_source"] == {"MISS": 7}
    assert all(_stored(a.id) is not None for a in articles)

    services.article_update(article=articles[0], data={"title": "Edited"})  # invalidates its detail
    with CaptureQueriesContext(connection) as queries:
        again = warm.warm_articles(batch_size=3)
    assert len(queries) == 1 + 1  # the ids, then only the batch holding the edited article
    assert again["by_source"] == {"HIT-L2": 6, "MISS": 1}
    assert orjson.loads(_stored(articles[0].id)[http.BODY])["title"] == "Edited"

    # Refresh-ahead (the periodic run): entries whose soft expiry is within the horizon reload.
    assert warm.warm_articles(batch_size=3, refresh_within=60)["by_source"] == {"HIT-L2": 7}
    with CaptureQueriesContext(connection) as queries:
        ahead = warm.warm_articles(batch_size=3, refresh_within=2 * 3600)  # > the article TTL
    assert len(queries) == 1 + 3 and ahead["by_source"] == {"MISS": 7}


def test_the_command_and_the_task_warm_every_article(django_assert_num_queries, settings):
    from django.core.management import call_command

    from articles.tasks import warm_cache_task

    require_postgresql()
    settings.WARM_CACHE_TOP_ARTICLES = 0
    articles = _site(4, drafts=1)
    call_command("warm_cache", "--all", verbosity=0)
    report = warm.last_run()["articles"]
    assert (report["articles"], report["by_source"], report["refused"]) == (4, {"MISS": 4}, 0)
    fetcher.clear_local()
    client = Client()
    for article in articles:
        with django_assert_num_queries(0):
            assert client.get(f"/api/articles/{article.id}/")["X-Cache"] == "HIT-L2"
    ran = warm_cache_task.apply(kwargs={"all_articles": True}).get()  # the task body, in this process
    assert ran["articles"]["by_source"] == {"HIT-L2": 4}


def test_warm_cache_all_racing_an_editor_stores_no_old_version(app_tiers_only):
    """manage.py warm_cache --all in its own process (small batches, so it spans the race), a
    writer editing articles in this one and a reader filling this process's L1 meanwhile. Once
    both are done and the last write has returned, neither L2 nor L1 answers an old version."""
    require_postgresql()
    articles = _site(150)
    ids = [a.id for a in articles]
    warmer = subprocess.Popen(
        [sys.executable, "manage.py", "warm_cache", "--all"], cwd=REPO,
        # Batches of 1: the warm spans enough of the writer's edits (~17 ms each under a row lock
        # here, several times that on a loaded CI machine: batches of 3 once left only 18 edits).
        env=app_env(WARM_CACHE_BATCH_SIZE="1", WARM_CACHE_TOP_ARTICLES="5"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    done = threading.Event()
    edits, errors = [], []

    def writer():
        rng = random.Random(17)
        try:
            while not done.is_set():
                article = Article.objects.get(pk=rng.choice(ids))
                services.article_update(article=article, data={"title": f"Edit {len(edits) + 1}"})
                edits.append(article.id)
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)
        finally:
            connection.close()

    def reader():
        rng, client = random.Random(3), Client()
        try:
            while not done.is_set():
                # A few hot articles: the rest is left for the warm to fill.
                assert client.get(f"/api/articles/{rng.choice(ids[:10])}/").status_code == 200
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    try:
        out, err = warmer.communicate(timeout=240)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert warmer.returncode == 0, err[-2000:]
    assert "warm_cache --all: 150 articles in 150 batches" in out, out
    assert not errors, errors
    assert len(edits) >= 20, "the writer hardly ran: no race was exercised"

    current = dict(Article.objects.values_list("id", "version"))
    stale_l2, stale_read = [], []
    client = Client()
    for article_id in ids:
        entry = _stored(article_id)
        if entry is not None and orjson.loads(entry[http.BODY])["version"] != current[article_id]:
            stale_l2.append(article_id)
        if orjson.loads(client.get(f"/api/articles/{article_id}/").content)["version"] != current[article_id]:
            stale_read.append(article_id)
    assert stale_l2 == [] and stale_read == []


WARM_LOOP = """
import json, time
from articles import warm
end, runs, refused = time.time() + {seconds}, 0, 0
while time.time() < end:
    refused += warm.warm_articles(batch_size=3)["refused"]
    runs += 1
print(json.dumps({{"runs": runs, "refused": refused}}))
"""


def _edit_until(done, ids, returned, errors, seed, edits):
    """Edit random articles of `ids` back to back; `returned[id]` is the version of the last
    edit of it whose call has returned (its invalidation done)."""
    rng = random.Random(seed)
    try:
        while not done.is_set():
            article = Article.objects.get(pk=rng.choice(ids))
            services.article_update(article=article, data={"title": f"Edit {seed}-{article.version}"})
            returned[article.id] = max(returned.get(article.id, 0), article.version)
            edits.append(article.id)
    except Exception as exc:  # noqa: BLE001 (reported by the caller's assertion)
        errors.append(exc)
    finally:
        connection.close()


def _sample_l2(done, ids, returned, stale, reads):
    """Read L2 directly, over and over: an entry older than an edit that had returned before
    the read began is a stale set."""
    while not done.is_set():
        for article_id in ids:
            floor = returned.get(article_id, 0)
            stored = peek(warm.detail_key(article_id))
            reads.append(1)
            if stored is not None:
                version = orjson.loads(stored.value[http.BODY])["version"]
                if version < floor:
                    stale.append((article_id, version, floor))


def test_bulk_fills_racing_editors_on_a_few_articles_store_no_old_version(app_tiers_only):
    """The same race, made dense: another process warms 6 articles over and over (each pass
    reloads what the last edits invalidated, so its loads overlap the next edits) while two
    writers edit those 6 articles back to back and a sampler reads L2. A bulk fill that ignored
    the sequence read at the batch's start leaves old versions in L2 here."""
    require_postgresql()
    ids = [a.id for a in _site(6)]
    warmer = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", WARM_LOOP.format(seconds=6)], cwd=REPO,
        env=app_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    done, returned, errors, stale, reads, edits = threading.Event(), {}, [], [], [], []
    threads = [threading.Thread(target=_edit_until, args=(done, ids, returned, errors, seed, edits))
               for seed in (1, 2)]
    threads.append(threading.Thread(target=_sample_l2, args=(done, ids, returned, stale, reads)))
    time.sleep(1.5)  # the child's Django start-up
    for thread in threads:
        thread.start()
    try:
        out, err = warmer.communicate(timeout=120)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert warmer.returncode == 0, err[-2000:]
    loops = json.loads(out.strip().splitlines()[-1])
    assert loops["runs"] > 10 and len(edits) >= 20 and len(reads) > 100 and not errors, (loops, len(edits), errors)
    assert stale == [], f"{len(stale)} stale L2 reads of {len(reads)} (warm loop: {loops})"
    current = dict(Article.objects.values_list("id", "version"))
    client = Client()
    for article_id in ids:
        entry = _stored(article_id)
        assert entry is None or orjson.loads(entry[http.BODY])["version"] == current[article_id], article_id
        assert orjson.loads(client.get(f"/api/articles/{article_id}/").content)["version"] == current[article_id]
