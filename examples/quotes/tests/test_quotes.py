"""The example site against a real Redis: response caching, caching.fetch(), tags and
invalidation after commit, and Django's cache_page on the TieredCache backend."""

import pytest
from caching import HIT_L1, MISS
from caching.backends import TieredCache
from django.core.cache import caches
from django.db import transaction

from quotes.selectors import quote_data
from quotes.services import quote_create, quote_update

# Real commits: invalidate_tags_on_commit acts when the service's transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_quote_page_is_served_from_the_tiers_until_the_quote_changes(client, django_assert_num_queries):
    quote = quote_create(text="Simple is better than complex.", author="Tim Peters")
    url = f"/quotes/{quote.pk}/"

    first = client.get(url)
    assert first.status_code == 200 and first["X-Cache"] == MISS
    assert first.json()["text"] == "Simple is better than complex."
    assert f"quote:{quote.pk}" in first["Surrogate-Key"].split()
    assert first["Cache-Control"].startswith("public, max-age=30, s-maxage=300")

    with django_assert_num_queries(0):
        again = client.get(url)
    assert again["X-Cache"] == HIT_L1 and again.content == first.content

    quote_update(quote_id=quote.pk, text="Flat is better than nested.")
    after = client.get(url)
    assert after["X-Cache"] == MISS and after.json()["text"] == "Flat is better than nested."


def test_a_missing_quote_is_a_cached_404(client, django_assert_num_queries):
    first = client.get("/quotes/987654/")
    assert first.status_code == 404 and first.json() == {"error": "not found"}
    with django_assert_num_queries(0):
        again = client.get("/quotes/987654/")
    assert again.status_code == 404 and again["X-Cache"] == HIT_L1
    assert again["Surrogate-Key"] == "quote:987654"


def test_fetch_costs_no_query_on_a_hit_and_a_rollback_invalidates_nothing(django_assert_num_queries):
    quote = quote_create(text="Readability counts.", author="Tim Peters")
    with django_assert_num_queries(1):
        assert quote_data(quote.pk)["text"] == "Readability counts."
    with django_assert_num_queries(0):
        assert quote_data(quote.pk)["text"] == "Readability counts."

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        quote_update(quote_id=quote.pk, text="never committed")
        raise Abandon
    with django_assert_num_queries(0):
        assert quote_data(quote.pk)["text"] == "Readability counts."

    quote_update(quote_id=quote.pk, text="Readability counts, twice.")
    assert quote_data(quote.pk)["text"] == "Readability counts, twice."


def test_the_list_keys_on_its_own_parameters_and_is_invalidated_by_its_tag(client):
    quote_create(text="Errors should never pass silently.", author="Tim Peters")
    first = client.get("/quotes/?limit=1")
    assert first["X-Cache"] == MISS and len(first.json()["quotes"]) == 1
    assert client.get("/quotes/?limit=01&utm_source=mail")["X-Cache"] == HIT_L1

    newest = quote_create(text="Now is better than never.", author="Tim Peters")
    after = client.get("/quotes/?limit=1")
    assert after["X-Cache"] == MISS and after.json()["quotes"][0]["id"] == newest.pk

    bad = client.get("/quotes/?limit=many")
    assert bad.status_code == 400 and "limit" in bad.json()["error"]


def test_cache_page_on_the_tiered_backend(client):
    assert isinstance(caches["pages"], TieredCache)
    first = client.get("/colophon/")
    assert client.get("/colophon/").content == first.content  # the second one is cached
    caches["pages"].clear()
    assert client.get("/colophon/").content != first.content
