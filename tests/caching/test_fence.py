"""Fills fenced by the database's log position (caching/fence.py, issue 26), on the real L1 and
Redis, with the project's side played by a tiny stand-in: a "primary" and a "replica" that
each hold a title and a position, and a loader that reads the replica unless the fence asks for
the primary - what newsite.db_routers does with PostgreSQL (tests/deploy/test_replica.py runs
the real thing)."""

from __future__ import annotations

import pytest

import caching
from caching import engine, fence, fetcher, keys

from .conftest import cache_settings

KEY = "fence:article:1"
TAG = "article:1"


class Database:
    """The project's side: write_position() is the primary's, the loader reads the replica
    (noting its replay position) unless the load must read the primary."""

    def __init__(self):
        self.primary = ("v1", 100)
        self.replica = ("v1", 100)
        self.loads: list[str] = []

    def write_position(self) -> int:
        return self.primary[1]

    def write(self, title: str) -> None:
        self.primary = (title, self.primary[1] + 10)

    def replay(self) -> None:
        self.replica = self.primary

    def load(self):
        if fence.reads_primary():
            self.loads.append("primary")
            return self.primary[0]
        fence.note_replica_read(self.replica[1])
        self.loads.append("replica")
        return self.replica[0]


@pytest.fixture
def db():
    return Database()


def fenced(db, behind="reread"):
    return cache_settings(REPLICA_FENCE=db, REPLICA_BEHIND=behind)


def stored_title(face) -> bytes | None:
    return engine.redis_client().get(keys.value_key(face.namespace, KEY))


def fetch(db):
    return caching.fetch(KEY, db.load, kind="article", tags=[TAG])


@pytest.mark.django_db
def test_a_fill_from_a_replica_behind_the_invalidation_is_read_again_from_the_primary(db):
    with fenced(db):
        assert fetch(db).value == "v1"
        db.write("v2")
        caching.invalidate_tags([TAG])  # records position 110 for the tag
        fetched = fetch(db)  # the replica (at 100) still has v1
        assert (fetched.value, fetched.superseded) == ("v2", False)
        assert db.loads == ["replica", "replica", "primary"]
        assert b"v2" in stored_title(fetcher.current())
        assert fetch(db).source == caching.HIT_L1


@pytest.mark.django_db
def test_no_store_answers_the_replica_value_uncached(db):
    with fenced(db, behind="no_store"):
        db.write("v2")
        caching.invalidate_tags([TAG])
        fetched = fetch(db)
        assert (fetched.value, fetched.superseded) == ("v1", True)  # no-store downstream
        assert stored_title(fetcher.current()) is None
        assert fetch(db).source == caching.MISS  # not in L1 either
        db.replay()
        assert fetch(db).value == "v2" and fetch(db).source == caching.HIT_L1


@pytest.mark.django_db
def test_a_replica_that_replayed_the_write_fills_as_usual(db):
    with fenced(db):
        db.write("v2")
        caching.invalidate_tags([TAG])
        db.replay()
        assert fetch(db).value == "v2"
        assert db.loads == ["replica"]
        assert b"v2" in stored_title(fetcher.current())


@pytest.mark.django_db
def test_a_write_during_a_replica_load_answers_the_primary_value_uncached(db):
    # The stale-set rule refuses the fill either way; the fence, checked first, makes its caller
    # get the primary's value instead of the replica's older one.
    with fenced(db):
        load = db.load

        def load_then_write():
            value = load()
            if len(db.loads) == 1:
                db.write("v2")
                caching.invalidate_tags([TAG])
            return value

        fetched = caching.fetch(KEY, load_then_write, kind="article", tags=[TAG])
        assert (fetched.value, fetched.superseded) == ("v2", True)
        assert db.loads == ["replica", "primary"]
        assert stored_title(fetcher.current()) is None


@pytest.mark.django_db
def test_a_load_that_failed_on_the_replica_runs_again_on_the_primary(db):
    from django.db import OperationalError

    with fenced(db):
        load = db.load

        def conflict():
            value = load()
            if db.loads[-1] == "replica":
                raise OperationalError("canceling statement due to conflict with recovery (test)")
            return value

        db.write("v2")  # the replica (still at v1) is the one that fails
        assert caching.fetch(KEY, conflict, kind="article", tags=[TAG]).value == "v2"
        assert db.loads == ["replica", "primary"]
        assert b"v2" in stored_title(fetcher.current())


@pytest.mark.django_db
def test_a_tag_keeps_the_highest_position_it_was_invalidated_after(db):
    with fenced(db):
        face = fetcher.current()
        db.primary = ("v3", 300)
        caching.invalidate_tags([TAG])
        db.primary = ("v3", 200)  # a write that committed earlier reaches Redis later
        caching.invalidate_tags([TAG])
        client = engine.redis_client()
        assert client.get(keys.tag_position_key(face.namespace, TAG)) == b"300"
        assert int(client.get(keys.write_position_key(face.namespace))) >= 300
        db.replica = ("v2", 250)
        assert fetch(db).value == "v3"
        assert db.loads == ["replica", "primary"]


@pytest.mark.django_db
def test_without_a_fence_nothing_is_recorded(db):
    face = fetcher.current()
    assert face.conf.fence is None
    caching.invalidate_tags([TAG])
    assert engine.redis_client().get(keys.tag_position_key(face.namespace, TAG)) is None


def test_write_history_tells_how_far_behind():
    history = fence.WriteHistory(keep=120)
    history.saw(100, now=1000.0)
    history.saw(200, now=1010.0)
    history.saw(300, now=1040.0)
    assert history.as_of(30, now=1041.0) == 200  # known 31 s ago
    assert history.as_of(60, now=1041.0) is None
    history.saw(fence.UNKNOWN_POSITION, now=1042.0)
    assert history.newest == 300


@pytest.mark.django_db
def test_a_replica_read_whose_fill_cannot_reach_redis_is_kept_nowhere(db, use_private_redis):
    with fenced(db):
        def load_then_redis_stops():
            value = db.load()
            use_private_redis.stop()  # nothing can check the replica's read now
            return value

        fetched = caching.fetch(KEY, load_then_redis_stops, kind="article", tags=[TAG])
        assert (fetched.value, fetched.superseded) == ("v1", True)
        assert fetcher.current().l1.get(KEY) is None
