"""The public API in its everyday use: negative caching, bulk fetch, the decorator, switches."""

import pytest

import caching
from caching.http import ResponsePolicy
from caching.params import IntParam
from tests.caching import names

from .conftest import cache_settings


def test_cached_none_is_a_value_not_a_miss():
    calls = []

    def loader():
        calls.append(1)

    assert caching.fetch("article:404", loader, kind="article").value is None
    fetched = caching.fetch("article:404", loader, kind="article")
    assert fetched.value is None and fetched.source in (caching.HIT_L1, caching.HIT_L2)
    assert len(calls) == 1


def _values(fetched: dict) -> dict:
    return {key: f.value for key, f in fetched.items()}


def test_bulk_fetch_one_loader_call_for_the_misses_and_backfill():
    caching.fetch(names.article_key(1), lambda: "one", kind="article")
    calls = []

    def bulk_loader(missing):
        calls.append(sorted(missing))
        return {key: f"loaded-{arg}" for key, arg in missing.items() if arg != 3}

    wanted = {names.article_key(i): i for i in (1, 2, 3)}
    fetched = caching.fetch_many(wanted, bulk_loader, kind="article", tags_for=lambda key, value: [key])
    assert _values(fetched) == {"article:1": "one", "article:2": "loaded-2", "article:3": None}
    assert fetched["article:1"].source == caching.HIT_L1 and fetched["article:2"].source == caching.MISS
    assert calls == [["article:2", "article:3"]]
    assert _values(caching.fetch_many(wanted, bulk_loader, kind="article")) == _values(fetched)
    assert len(calls) == 1
    caching.invalidate_tags(["article:2"])
    again = caching.fetch_many(wanted, bulk_loader, kind="article")
    assert again["article:2"].value == "loaded-2" and again["article:2"].source == caching.MISS
    assert calls[-1] == ["article:2"]


def test_bulk_fetch_without_l1_reads_l2_and_leaves_l1_alone():
    wanted = {names.article_key(i): i for i in (11, 12)}
    fetched = caching.fetch_many(wanted, lambda m: {k: f"v{a}" for k, a in m.items()}, kind="article",
                                 tags_for=lambda key, value: [key], use_l1=False)
    assert all(f.source == caching.MISS and not f.superseded for f in fetched.values())
    again = caching.fetch_many(wanted, lambda m: {}, kind="article", use_l1=False)
    assert [f.source for f in again.values()] == [caching.HIT_L2, caching.HIT_L2]
    # L1 was never filled: a single fetch answers from L2.
    assert caching.fetch(names.article_key(11), lambda: "never", kind="article").source == caching.HIT_L2


def test_tags_from_the_loaded_value_and_invalidation_by_tag():
    calls = []

    def article(article_id):
        def load():
            calls.append(article_id)
            return {"id": article_id, "author": 9}

        return caching.get_or_load(
            names.article_key(article_id), load, kind="article",
            tags=lambda value: [names.article_tag(value["id"]), names.author_tag(value["author"])],
        )

    assert article(5) == article(5) == {"id": 5, "author": 9}
    assert calls == [5]
    caching.invalidate_tags([names.author_tag(9)])
    assert article(5)["id"] == 5 and calls == [5, 5]


def test_disabled_cache_calls_the_loader_every_time():
    calls = []
    with cache_settings(ENABLED=False):
        for _ in range(3):
            fetched = caching.fetch("article:1", lambda: calls.append(1) or "v", kind="article")
            assert fetched.source == caching.MISS
    assert len(calls) == 3


def test_a_policy_whose_params_cannot_be_hashed_still_names_them():
    """The WSGI front reads a policy's parameter names off the policy (computed once), never by
    hashing it: params given as a list (an unhashable policy) worked before issue 29 and still do."""
    policy = ResponsePolicy(kind="article", params=[IntParam("page", default=1, minimum=1, maximum=50)])
    with pytest.raises(TypeError):
        hash(policy)
    assert policy.param_names == frozenset({"page"})
    assert policy.param_names is policy.param_names
