"""A write committed in this process is seen by another process's next GET (after the broadcast)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from articles import services
from tests.factories import make_article

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reader():
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.articles.reader_process"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )

    def get(path: str) -> dict:
        proc.stdin.write(f"GET {path}\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    yield get
    proc.stdin.close()
    proc.wait(timeout=10)


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
