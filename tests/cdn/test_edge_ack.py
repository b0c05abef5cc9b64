"""Read-your-writes at the edge (cdn/edge_ack.py): a write returns once every Varnish node has
confirmed its purge, within EDGE_ACK_WAIT; a node that is down or hangs leaves the row to the
outbox's drain, counted, and the drain delivers it when the node is back.

Real varnishd nodes in front of a small origin, real PostgreSQL and Redis; the write is the
production path (caching.invalidate_tags_on_commit in a transaction: the app tiers, then the
outbox row, then the edges, on commit). No Celery worker runs here: a row done right after the
commit was delivered by the writer. The path to the second node's purge port goes through a
Relay the test breaks (refused, or accepted and never answered) while readers still reach the
node itself."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from caching import invalidate_tags_on_commit
from cdn.models import PurgeOutbox
from cdn.tasks import purge_outbox_redrive
from tests.cdn.servers import Relay, Varnish
from tests.support import require_postgresql

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PATH = "/api/articles/31/"
TAG = "article:31"


@pytest.fixture
def second(origin):
    """A second Varnish node in front of the same origin, and a relay to its purge port."""
    edge = Varnish(origin.port).start()
    relay = Relay(edge.port)
    yield edge, relay
    relay.close()
    edge.close()


def _configure(settings, *locations, wait=2.0):
    # A generous bound where the test is not about it: this machine is shared and loaded.
    settings.CDN_BACKENDS = {"varnish": {"BACKEND": "cdn.backends.varnish.VarnishBackend",
                                         "LOCATION": list(locations)}}
    settings.CDN_OUTBOX = {**settings.CDN_OUTBOX, "EDGE_ACK_WAIT": wait, "BACKOFF_BASE": 0.0, "BACKOFF_MAX": 0.0,
                           "REDRIVE_AFTER": 0.0}  # the test runs what the beat would, a second later


def _acks(result):
    return REGISTRY.get_sample_value("newsite_cdn_edge_acks_total", {"backend": "varnish", "result": result}) or 0


def _write(origin, body):
    """The change (the origin answers `body` from now on) and its invalidation, committed."""
    with transaction.atomic():
        origin.page(PATH, body, tags=[TAG, "author:1"])
        invalidate_tags_on_commit([TAG])
    return PurgeOutbox.objects.order_by("-pk").first()


def _cached(origin, *edges):
    origin.page(PATH, "v1", tags=[TAG, "author:1"])
    for edge in edges:
        edge.get(PATH)
        assert edge.get(PATH).headers["X-Cache-Edge"] == "HIT"


def test_the_write_returns_once_every_node_purged(settings, origin, varnish, second):
    require_postgresql()
    node2, relay = second
    relay.up()
    _configure(settings, varnish.url, relay.url)
    _cached(origin, varnish, node2)
    acked = _acks("acked")

    row = _write(origin, "v2")

    seen = [(edge.get(PATH).text, edge.get(PATH).headers["X-Cache-Edge"]) for edge in (varnish, node2)]
    assert seen == [("v2", "HIT"), ("v2", "HIT")], f"right after the write returned: {seen}"
    assert (row.status, row.delivered_to, row.tags) == ("done", ["varnish"], [TAG])
    assert _acks("acked") == acked + 1


def test_a_node_refusing_the_purge_leaves_the_row_to_the_drain(settings, origin, varnish, second):
    require_postgresql()
    node2, relay = second  # relay down: the second node's purge port refuses connections
    _configure(settings, varnish.url, relay.url)
    _cached(origin, varnish, node2)
    errors = _acks("error")

    row = _write(origin, "v2")

    assert varnish.get(PATH).text == "v2"  # the node that answered was purged
    assert node2.get(PATH).text == "v1"  # the other was not reached
    assert (row.status, row.delivered_to) == ("pending", []), "a node missed the purge: the row must stay"
    assert _acks("error") == errors + 1
    relay.up()
    purge_outbox_redrive()  # what the beat's re-drive (or the drain task sent on commit) runs
    row.refresh_from_db()
    assert (row.status, row.delivered_to) == ("done", ["varnish"])
    assert node2.get(PATH).text == "v2"


def test_a_node_that_hangs_does_not_hold_the_write(settings, origin, varnish, second):
    """The relay accepts the purge and never answers (until the end of the test): the write
    returns without it, the row is left to the drain."""
    require_postgresql()
    node2, relay = second
    relay.hang()
    _configure(settings, varnish.url, relay.url, wait=0.15)
    _cached(origin, varnish, node2)
    fallbacks = _acks("timeout") + _acks("error")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            row = pool.submit(_write, origin, "v2").result(timeout=30)
        assert relay.accepted >= 1 and relay.mode == "hang"  # the node was asked, and still holds it
    finally:
        relay.up()
    assert row.status == "pending" and row.delivered_to == []
    assert _acks("timeout") + _acks("error") == fallbacks + 1
    assert varnish.get(PATH).text == "v2"
    purge_outbox_redrive()
    row.refresh_from_db()
    assert row.status == "done"
    assert node2.get(PATH).text == "v2"


def test_no_wait_configured_means_the_drain_as_before(settings, origin, varnish):
    require_postgresql()
    _configure(settings, varnish.url, wait=0)
    _cached(origin, varnish)

    row = _write(origin, "v2")

    assert row.status == "pending" and varnish.get(PATH).text == "v1"
    purge_outbox_redrive()
    assert varnish.get(PATH).text == "v2"
