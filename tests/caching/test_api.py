"""The public API in its everyday use: negative caching, bulk fetch, the decorator, switches."""

import caching
from caching import keys, tags

from .conftest import cache_settings


def test_cached_none_is_a_value_not_a_miss():
    calls = []

    def loader():
        calls.append(1)

    assert caching.fetch("article:404", loader, kind="article").value is None
    fetched = caching.fetch("article:404", loader, kind="article")
    assert fetched.value is None and fetched.source in (caching.HIT_L1, caching.HIT_L2)
    assert len(calls) == 1


def test_bulk_fetch_one_loader_call_for_the_misses_and_backfill():
    caching.fetch(keys.article_key(1), lambda: "one", kind="article")
    calls = []

    def bulk_loader(missing):
        calls.append(sorted(missing))
        return {key: f"loaded-{arg}" for key, arg in missing.items() if arg != 3}

    wanted = {keys.article_key(i): i for i in (1, 2, 3)}
    result = caching.get_many_or_load(wanted, bulk_loader, kind="article",
                                      tags_for=lambda key, value: [key])
    assert result == {"article:1": "one", "article:2": "loaded-2", "article:3": None}
    assert calls == [["article:2", "article:3"]]
    assert caching.get_many_or_load(wanted, bulk_loader, kind="article") == result
    assert len(calls) == 1
    caching.invalidate_tags(["article:2"])
    assert caching.get_many_or_load(wanted, bulk_loader, kind="article")["article:2"] == "loaded-2"
    assert calls[-1] == ["article:2"]


def test_tags_from_the_loaded_value_and_invalidation_by_tag():
    calls = []

    def article(article_id):
        def load():
            calls.append(article_id)
            return {"id": article_id, "author": 9}

        return caching.get_or_load(
            keys.article_key(article_id), load, kind="article",
            tags=lambda value: [tags.article_tag(value["id"]), tags.author_tag(value["author"])],
        )

    assert article(5) == article(5) == {"id": 5, "author": 9}
    assert calls == [5]
    caching.invalidate_tags([tags.author_tag(9)])
    assert article(5)["id"] == 5 and calls == [5, 5]


def test_disabled_cache_calls_the_loader_every_time():
    calls = []
    with cache_settings(ENABLED=False):
        for _ in range(3):
            fetched = caching.fetch("article:1", lambda: calls.append(1) or "v", kind="article")
            assert fetched.source == caching.MISS
    assert len(calls) == 3
