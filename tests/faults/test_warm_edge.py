"""`warm_cache --all --edge URL` (issues 17.3, 17.6): every warmed page requested through a real
Varnish (deploy/varnish/default.vcl) in front of the web server, so the long tail's first readers hit
the edge - while an editor edits some of those articles through the API during the warm. After
the last edit returned and its purges were delivered, the edge answers every article with
PostgreSQL's title: a warm fetch that was in flight across an edit does not leave the old version
at the edge."""

import subprocess
import sys
import threading

import pytest
import requests

from articles.models import Article
from tests.factories import make_article
from tests.faults.stack import HTTP_TIMEOUT, title_of, wait_done
from tests.faults.test_faults import last_pk, patch, rows_after
from tests.support import REPO, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTICLES = 120
EDITED = 4


def test_warm_through_the_edge_with_an_editor_racing_it(stack, token):
    articles = [make_article(title=f"Warm {i} v0") for i in range(ARTICLES)]
    edited = articles[:EDITED]
    since = last_pk()
    stop, edits = threading.Event(), []

    def editor():
        n = 0
        while not stop.is_set():
            article = edited[n % EDITED]
            n += 1
            patch(stack, token, article.pk, f"Warm edit {n}")
            edits.append(article.pk)

    thread = threading.Thread(target=editor, daemon=True)
    thread.start()
    try:
        warmed = subprocess.run(
            [sys.executable, "manage.py", "warm_cache", "--all", "--edge", stack.edge.url],
            cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=300,
        )
    finally:
        stop.set()
        thread.join(HTTP_TIMEOUT + 5)
    assert warmed.returncode == 0, warmed.stderr[-3000:]
    assert f"warm_cache --edge {stack.edge.url}:" in warmed.stdout, warmed.stdout
    assert "no answer 0" in warmed.stdout, warmed.stdout
    assert edits, "the editor made no edit during the warm"

    rows = wait_done([row.pk for row in rows_after(since)])
    assert rows and {r.status for r in rows} == {"done"}, [(r.status, r.last_error) for r in rows]
    titles = dict(Article.objects.filter(pk__in=[a.pk for a in articles]).values_list("pk", "title"))

    def edge_answers():
        return {a.pk: requests.get(f"{stack.edge.url}/api/articles/{a.pk}/", timeout=HTTP_TIMEOUT) for a in articles}

    # Every article not edited was stored by the warm: its first read is an edge hit - but for a
    # fetch overtaken by purges (of any tag: the editor's) three times, which the edge serves
    # without storing (docs/cdn.md, "in-flight fetches"): a few, how many depends on how long a
    # fetch takes against the editor's pace on this machine (CI saw 15 of 120 once; a fifth is
    # the bound); the next read stores those.
    first = edge_answers()
    misses = [pk for pk, r in first.items() if pk not in titles or r.headers.get("X-Cache-Edge") != "HIT"]
    not_edited = set(misses) - {a.pk for a in edited}
    assert len(not_edited) <= ARTICLES // 5, misses
    for pk in not_edited:
        requests.get(f"{stack.edge.url}/api/articles/{pk}/", timeout=HTTP_TIMEOUT)  # stored now (no purges)
        again = requests.get(f"{stack.edge.url}/api/articles/{pk}/", timeout=HTTP_TIMEOUT)
        assert again.headers.get("X-Cache-Edge") == "HIT", (pk, dict(again.headers))
    # The edge shows PostgreSQL's title for every article once the purges are delivered (the
    # outbox's second purge removes what a fetch in flight across a purge stored).
    assert wait_until(lambda: {pk: title_of(r) for pk, r in edge_answers().items()} == titles, 20, interval=0.5), \
        {pk: (title_of(r), titles[pk]) for pk, r in edge_answers().items() if title_of(r) != titles[pk]}


def test_edge_url_is_checked(stack):
    bad = subprocess.run([sys.executable, "manage.py", "warm_cache", "--edge", "ftp://example.com/x"],
                         cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--edge: not an edge base URL" in bad.stderr, (bad.returncode, bad.stderr[-500:])
