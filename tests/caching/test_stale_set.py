"""2. Stale-set race: a slow loader reads version 1; meanwhile a writer commits version 2 and
invalidates. A naive cache-aside ends holding version 1; ours never does."""

import threading
import time

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection, transaction

import caching
from caching import conf, engine, fetcher, keys
from tests.caching import names


def _race(get, invalidate_on_commit, group):
    """Run `get` in a thread whose loader reads the row, then stalls until a writer thread
    (this one) has committed version 2 and invalidated."""
    read_done, write_done = threading.Event(), threading.Event()
    out = {}

    def slow_loader():
        name = Group.objects.get(pk=group.pk).name
        read_done.set()
        assert write_done.wait(10)
        return name

    def reader():
        try:
            out["value"] = get(slow_loader)
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    assert read_done.wait(10)
    with transaction.atomic():
        Group.objects.filter(pk=group.pk).update(name="v2")
        invalidate_on_commit()
    write_done.set()
    thread.join(10)
    return out["value"]


@pytest.mark.django_db(transaction=True)
def test_naive_cache_aside_keeps_the_old_version():
    group = Group.objects.create(name="v1")
    key = f"naive:{group.pk}"

    def naive_get(loader):
        value = cache.get(key)
        if value is None:
            value = loader()
            cache.set(key, value, 600)
        return value

    assert _race(naive_get, lambda: transaction.on_commit(lambda: cache.delete(key)), group) == "v1"
    assert cache.get(key) == "v1"  # the stale set: version 1 cached after version 2 committed


@pytest.mark.django_db(transaction=True)
def test_fill_that_started_before_an_invalidation_is_rejected():
    group = Group.objects.create(name="v1")
    key = names.article_key(group.pk)
    tag = names.article_tag(group.pk)

    def ours(loader):
        # Tags known only after the load, as for list endpoints.
        return caching.fetch(key, loader, kind="article", tags=lambda value: [tag])

    fetched = _race(ours, lambda: caching.invalidate_tags_on_commit([tag]), group)
    assert (fetched.value, fetched.source) == ("v1", caching.MISS)  # that caller's own answer

    assert engine.redis_client().get(keys.value_key(fetcher.current().namespace, key)) is None  # nothing stored
    again = caching.fetch(key, lambda: Group.objects.get(pk=group.pk).name, kind="article", tags=[tag])
    assert (again.value, again.source) == ("v2", caching.MISS)  # not HIT-L1 "v1"
    assert caching.fetch(key, lambda: "unused", kind="article", tags=[tag]).value == "v2"


@pytest.mark.django_db(transaction=True)
def test_bulk_fill_that_started_before_an_invalidation_is_rejected():
    """fetch_many keeps the single fill's rule: its pipeline of fills is checked against the
    sequence read before the batch's load; a key of the batch whose tag moved on is refused,
    the others are stored."""
    group, other = Group.objects.create(name="v1"), Group.objects.create(name="other")
    key, other_key = names.article_key(group.pk), names.article_key(other.pk)
    tag = names.article_tag(group.pk)

    def bulk(loader):
        fetched = caching.fetch_many(
            {key: group.pk, other_key: other.pk},
            lambda missing: {key: loader(), other_key: "other"},
            kind="article", tags_for=lambda k, value: [names.article_tag(int(k.split(":")[1]))],
        )
        return fetched

    fetched = _race(bulk, lambda: caching.invalidate_tags_on_commit([tag]), group)
    assert (fetched[key].value, fetched[key].superseded) == ("v1", True)
    assert (fetched[other_key].value, fetched[other_key].superseded) == ("other", False)
    ns = fetcher.current().namespace
    assert engine.redis_client().get(keys.value_key(ns, key)) is None  # nothing stored
    assert engine.redis_client().get(keys.value_key(ns, other_key)) is not None
    again = caching.fetch(key, lambda: Group.objects.get(pk=group.pk).name, kind="article", tags=[tag])
    assert (again.value, again.source) == ("v2", caching.MISS)  # not HIT-L1 "v1"


@pytest.mark.django_db(transaction=True)
def test_rollback_invalidates_nothing_but_runs_hooks_inside():
    seen = []
    caching.on_invalidate.append(seen.append)
    try:
        caching.fetch("article:77", lambda: "kept", kind="article", tags=["article:77"])
        with pytest.raises(RuntimeError), transaction.atomic():
            caching.invalidate_tags_on_commit(["article:77"])
            raise RuntimeError("rollback")
    finally:
        caching.on_invalidate.remove(seen.append)
    assert seen == [frozenset({"article:77"})]
    assert caching.fetch("article:77", lambda: "reloaded", kind="article").value == "kept"


@pytest.mark.django_db(transaction=True)
def test_refresh_of_a_stale_entry_that_started_before_an_invalidation_is_rejected(settings):
    """The same race on the other lease: a soft-expired entry is refreshed under the lease key
    (acquire.lua) while a writer commits and invalidates. The refresh is not stored."""
    group = Group.objects.create(name="v1")
    key = names.article_key(group.pk)
    tag = names.article_tag(group.pk)
    kinds, options = conf.kinds_name(), conf.settings_name()  # the project's names for them
    setattr(settings, kinds, {**getattr(settings, kinds), "tiny": {"ttl": 1, "swr": 60, "sie": 60}})
    setattr(settings, options, {**getattr(settings, options, {}), "L1_ENABLED": False, "TTL_JITTER": 0})
    assert caching.fetch(key, lambda: "v0", kind="tiny", tags=[tag]).source == caching.MISS
    time.sleep(1.1)  # soft-expired, inside its stale window

    def ours(loader):
        return caching.fetch(key, loader, kind="tiny", tags=[tag])

    fetched = _race(ours, lambda: caching.invalidate_tags_on_commit([tag]), group)
    assert (fetched.value, fetched.source, fetched.superseded) == ("v1", caching.MISS, True)
    again = caching.fetch(key, lambda: Group.objects.get(pk=group.pk).name, kind="tiny", tags=[tag])
    assert (again.value, again.source) == ("v2", caching.MISS)
