"""A fetch in flight at the purge (deploy/varnish/default.vcl): the origin built its answer
before the write, the purge reached Varnish, then the answer arrived. xkey cannot reach an
object still being fetched, so before this change Varnish stored that answer and served the old
version for s-maxage (the outbox's follow-up purge 0.5 s later was the cover).

The origin (tests/cdn/servers.py) holds the answer until the test releases it, so the order of
events is forced, not timed."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from cdn.backends.varnish import VarnishBackend

pytestmark = pytest.mark.slow

WAIT = 10  # seconds for a held request to reach the origin (it takes milliseconds)


def _purge(varnish, *tags):
    VarnishBackend(alias="edge", params={"LOCATION": varnish.url}).purge_tags(tags)


def test_a_fetch_begun_before_the_purge_is_not_stored_after_it(origin, varnish):
    path = "/api/articles/7/"
    origin.page(path, "v1", tags=["article:7", "author:2"])
    held = origin.hold(path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        inflight = pool.submit(varnish.get, path)
        try:
            assert held.arrived.wait(WAIT), "the edge's fetch never reached the origin"
            origin.page(path, "v2", tags=["article:7", "author:2"])  # the write...
            _purge(varnish, "article:7")  # ...and its purge, acknowledged by the edge
        finally:
            held.release()
        first = inflight.result(timeout=WAIT)
    after = [varnish.get(path) for _ in range(3)]
    assert first.status_code == 200
    assert [r.text for r in after] == ["v2"] * 3, (
        f"the answer built before the write was stored after its purge: {[r.text for r in after]} "
        f"(X-Cache-Edge {[r.headers['X-Cache-Edge'] for r in after]})")
    assert after[-1].headers["X-Cache-Edge"] == "HIT"  # the fresh version is stored


def test_a_fill_that_overlapped_a_purge_of_other_tags_is_still_stored(origin, varnish):
    """The check is per edge, not per tag: the overlapped fill costs one more origin request,
    and what it brings is stored (the edge's hit ratio does not change)."""
    path, other = "/api/articles/8/", "/api/articles/9/"
    origin.page(path, "eight", tags=["article:8"])
    origin.page(other, "nine", tags=["article:9"])
    varnish.get(other)
    held = origin.hold(path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        inflight = pool.submit(varnish.get, path)
        try:
            assert held.arrived.wait(WAIT), "the edge's fetch never reached the origin"
            _purge(varnish, "article:9")
        finally:
            held.release()
        assert inflight.result(timeout=WAIT).text == "eight"
    again = varnish.get(path)
    assert (again.text, again.headers["X-Cache-Edge"]) == ("eight", "HIT")
    assert origin.hits(path) == 2  # the overlapped answer, then the one stored


def test_a_fill_that_overlapped_no_purge_is_stored_from_one_fetch(origin, varnish):
    path = "/api/articles/10/"
    origin.page(path, "ten", tags=["article:10"])
    _purge(varnish, "article:999")  # an earlier purge does not count against later fetches
    held = origin.hold(path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        inflight = pool.submit(varnish.get, path)
        try:
            assert held.arrived.wait(WAIT), "the edge's fetch never reached the origin"
        finally:
            held.release()
        assert inflight.result(timeout=WAIT).text == "ten"
    assert varnish.get(path).headers["X-Cache-Edge"] == "HIT"
    assert origin.hits(path) == 1


def test_a_fetch_overtaken_again_and_again_is_served_but_not_kept(origin, varnish):
    """Purges landing during every attempt (the first and its two re-fetches): the last answer
    answers the waiting readers and is not stored; the next request fetches again."""
    path = "/api/articles/11/"
    origin.page(path, "eleven", tags=["article:11"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        holds = [origin.hold(path)]
        inflight = pool.submit(varnish.get, path)
        try:
            for attempt in range(3):
                assert holds[-1].arrived.wait(WAIT), f"attempt {attempt + 1} never reached the origin"
                _purge(varnish, "article:0")
                if attempt < 2:
                    holds.append(origin.hold(path))
                holds[-2 if attempt < 2 else -1].release()
        finally:
            for held in holds:
                held.release()
        assert inflight.result(timeout=WAIT).text == "eleven"
    assert origin.hits(path) == 3
    assert varnish.get(path).headers["X-Cache-Edge"] == "MISS"
