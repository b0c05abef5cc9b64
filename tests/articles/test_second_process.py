"""A write committed in this process is seen by another process's next GET (after the broadcast)."""

import json
import time

import pytest

from articles import services
from tests.articles.reader_process import start_reader, stop_reader
from tests.factories import make_article


@pytest.fixture
def reader():
    proc, get = start_reader()
    yield get
    stop_reader(proc)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_second_process_sees_the_commit(reader):
    article = make_article(title="Version one")
    path = f"/api/articles/{article.id}/"
    for _ in range(3):
        seen = reader(path)
    assert seen["x_cache"] == "HIT-L1" and json.loads(seen["body"])["title"] == "Version one"
    services.article_update(article=article, data={"title": "Version two"})  # commits: autocommit
    deadline = time.monotonic() + 3
    while True:
        seen = reader(path)
        if json.loads(seen["body"])["title"] == "Version two" or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert json.loads(seen["body"])["title"] == "Version two"
