"""Fills fenced by the database's log position (caching/fence.py, issue 26), on the real L1 and
Redis, with the project's side played by a tiny stand-in: a "primary" and a "replica" that
each hold a title and a position, and a loader that reads the replica unless the fence asks for
the primary - what newsite.db_routers does with PostgreSQL (tests/deploy/test_replica.py runs
the real thing)."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

import caching
from caching import engine, fence, fetcher, keys
from caching.l1 import VALUE

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

    def retry_on_primary(self, exc) -> bool:
        return "conflict with recovery" in str(exc)  # newsite.db_routers.WalFence: by SQLSTATE

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


@contextmanager
def fenced(db, behind="reread", *, seeded=True):
    """The fence on. `seeded`: after one fill, as in a running site (the first fill from a replica
    after Redis started empty finds no floor: it is re-read from the primary, which seeds it)."""
    with cache_settings(REPLICA_FENCE=db, REPLICA_BEHIND=behind):
        if seeded:
            caching.fetch("fence:warm-up", db.load, kind="article", tags=["warm-up"])
            db.loads.clear()
        yield


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
def test_a_load_error_that_is_not_the_replicas_is_raised_not_run_again(db):
    # Review of issue 26: a statement timeout of an expensive query ran twice.
    from django.db import OperationalError

    with fenced(db):
        def timeout():
            db.load()
            raise OperationalError("canceling statement due to statement timeout (test)")

        with pytest.raises(OperationalError):
            caching.fetch(KEY, timeout, kind="article", tags=[TAG])
        assert db.loads == ["replica"]


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


@pytest.mark.django_db
def test_a_redis_that_lost_the_position_marks_lets_no_replica_fill_through(db, use_private_redis):
    # Review of issue 26: a Redis restarted without persistence (here: FLUSHALL) forgets the
    # tags' positions; the fence's floor is gone with them, and an absent floor is "unknown".
    with fenced(db):
        assert fetch(db).value == "v1"
        db.write("v2")
        caching.invalidate_tags([TAG])  # position 110 recorded for the tag...
        engine.redis_client().flushall()  # ...and lost
        db.loads.clear()
        fetched = fetch(db)  # the replica (at 100) still has v1
        assert (fetched.value, fetched.superseded) == ("v2", False)
        assert db.loads == ["replica", "primary"]
        assert b"v2" in stored_title(fetcher.current())
        # The primary's position of after the loss is the floor now: the replica is below it.
        fetcher.clear_local()
        engine.redis_client().delete(keys.value_key(fetcher.current().namespace, KEY))
        db.loads.clear()
        assert fetch(db).value == "v2"
        assert db.loads == ["replica", "primary"]
        db.replay()
        fetcher.clear_local()
        engine.redis_client().delete(keys.value_key(fetcher.current().namespace, KEY))
        db.loads.clear()
        assert fetch(db).value == "v2"
        assert db.loads == ["replica"]


@pytest.mark.django_db
def test_a_replica_behind_by_more_than_a_marks_life_is_refused(db):
    # Review of issue 26: a tag's position mark expires TAG_INVALIDATION_TTL after its last
    # invalidation; a replica still behind that write then finds no mark. The namespace's log
    # of write positions (kept without expiry) refuses it, in any process.
    with cache_settings(TAG_INVALIDATION_TTL=2), fenced(db):
        face = fetcher.current()
        db.write("v2")
        caching.invalidate_tags([TAG])
        client = engine.redis_client()
        deadline = time.monotonic() + 10
        while client.exists(keys.tag_position_key(face.namespace, TAG)) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the log counts whole seconds
        assert not client.exists(keys.tag_position_key(face.namespace, TAG))
        fetcher.clear_local()
        fetched = fetch(db)
        assert (fetched.value, fetched.superseded) == ("v2", False)
        assert db.loads == ["replica", "primary"]


@pytest.mark.django_db
def test_a_fill_whose_lease_was_taken_over_is_still_fenced(db):
    # Review of issue 26: fill.lua answered "skipped" before checking the fence when another
    # process had taken the key's lease over, and the replica's old value went into L1.
    with fenced(db):
        face = fetcher.current()
        db.write("v2")
        caching.invalidate_tags([TAG])
        load = db.load

        def load_then_lose_the_lease():
            value = load()
            engine.redis_client().set(keys.value_key(face.namespace, KEY), "~another-process")
            return value

        fetched = caching.fetch(KEY, load_then_lose_the_lease, kind="article", tags=[TAG])
        assert fetched.value == "v2"
        assert db.loads == ["replica", "primary"]
        entry = face.l1.get(KEY)
        assert entry is None or entry[VALUE] == "v2"


@pytest.mark.django_db
def test_every_invalidation_renews_a_tags_position_mark(db):
    # Review of issue 26: a lower position left the mark's expiry as it was.
    with fenced(db):
        face = fetcher.current()
        client = engine.redis_client()
        tp = keys.tag_position_key(face.namespace, TAG)
        db.primary = ("v3", 300)
        caching.invalidate_tags([TAG])
        client.expire(tp, 5)  # as if most of its life had gone by
        db.primary = ("v3", 200)
        caching.invalidate_tags([TAG])
        assert client.get(tp) == b"300"
        assert client.ttl(tp) > 5


@pytest.mark.django_db
def test_replaying_queued_invalidations_raises_the_floor_for_every_tag(db):
    # Review of issue 26: invalidations queued while Redis was unreachable carry no position
    # until replayed, in whichever process queued them. The first replay raises the namespace's
    # floor to the primary's position of then, which covers every write committed before it
    # (those of processes that have not replayed theirs yet too), whatever its tags.
    with fenced(db):
        face = fetcher.current()
        db.write("v2")  # its invalidation could not reach Redis (here: another process's)
        face.invalidator.pending_tags.add("article:2")  # this process's own queued one
        fetched = fetch(db)  # the replay comes first; the replica (at 100) is below it
        assert fetched.value == "v2"
        assert db.loads == ["replica", "primary"]
        assert int(engine.redis_client().get(keys.write_floor_key(face.namespace))) == 110


@pytest.mark.django_db
def test_a_nested_load_passes_its_read_positions_to_the_enclosing_one(db):
    # Review of issue 26: the outer load of a nested fetch did not know its inner one read a
    # replica, and its fill went unfenced.
    with fenced(db, behind="no_store"):
        db.write("v2")
        caching.invalidate_tags([TAG])

        def outer():
            return caching.fetch("fence:inner", db.load, kind="article", tags=["inner"]).value

        fetched = caching.fetch(KEY, outer, kind="article", tags=[TAG])
        assert (fetched.value, fetched.superseded) == ("v1", True)
        assert stored_title(fetcher.current()) is None


@pytest.mark.django_db
def test_a_replay_whose_position_is_unknown_leaves_the_floor_as_it_was(db):
    # UNKNOWN_POSITION as a floor would refuse every replica fill for as long as Redis keeps it.
    with fenced(db):
        face = fetcher.current()
        floor = engine.redis_client().get(keys.write_floor_key(face.namespace))
        db.write_position = lambda: None  # the primary did not answer
        face.invalidator.pending_tags.add("article:2")
        face.invalidator.replay_pending()
        assert engine.redis_client().get(keys.write_floor_key(face.namespace)) == floor
