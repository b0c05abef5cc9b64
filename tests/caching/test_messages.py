"""The one message grammar of the invalidation channel (caching/broadcast.py parse), and the
commit -> L2 / L1 lag it lets every process observe."""

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

import caching
from caching import engine
from caching.broadcast import ACKNOWLEDGED, CLEAR, INVALIDATE, Message, parse
from tests.support import wait_until

from .conftest import metric


def test_parse_every_kind():
    assert parse(b"t17\narticle:1\nfeed:home") == Message(INVALIDATE, 17, ("article:1", "feed:home"))
    assert parse(b"a18@1700000000123\narticles") == Message(ACKNOWLEDGED, 18, ("articles",), 1700000000.123)
    assert parse(b"a19\narticles") == Message(ACKNOWLEDGED, 19, ("articles",), None)
    assert parse(b"c20") == Message(CLEAR, 20, ())


@pytest.mark.parametrize("junk", [b"hello", b"", b"t", b"tx1\na", b"a1@\na", b"a1@x\na", b"q1\na", b"\xff\xfe", "t١\na".encode()])
def test_anything_else_is_refused(junk):
    with pytest.raises(ValueError):
        parse(junk)


def _lag_count(stage: str) -> float:
    return REGISTRY.get_sample_value(metric("cache_invalidation_lag_seconds_count"), {"stage": stage}) or 0.0


@pytest.mark.django_db(transaction=True)
def test_a_committed_write_reports_its_commit_to_l2_and_l1_lag():
    assert engine.default().subscriber.wait_subscribed(5)
    l2_before, l1_before = _lag_count("l2"), _lag_count("l1")
    with transaction.atomic():
        caching.invalidate_tags_on_commit(["article:77"])
    assert _lag_count("l2") == l2_before + 1
    # Our own subscriber receives the broadcast too (and acknowledged it before the write returned).
    assert wait_until(lambda: _lag_count("l1") >= l1_before + 1, 5)
