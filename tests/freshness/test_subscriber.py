"""Issue 14, mechanism 5: the L1 subscriber must survive a malformed message, and a subscriber
that is stuck must be noticed (L1 off or cleared until it is back, /health/cache/ says so).

A stack of its own (today a malformed message ends every subscriber thread for good): editor
host + 2-worker reader host behind the fault-injecting Redis proxy; no edge, no Celery worker."""

from __future__ import annotations

import pytest

from tests.factories import make_article
from tests.freshness.conftest import burst, dumps, health_of_every_worker, warm_l1
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FRESHNESS_STACK = {"edge": False, "l2only": False}

EDIT_REACHES_L1_WAIT = 3.0  # normally a few ms
STUCK_NOTICE_WAIT = 5.0  # how long a stuck subscriber may go unnoticed


def detail(article_id: int) -> str:
    return f"/api/articles/{article_id}/"


def claims_live(subscription: dict | None) -> bool:
    """Whether a /health/cache/ "subscription" section says the subscriber is fine. Today it is
    {"subscribed": bool, ...}; a boolean live/ok/healthy or a status/state string also counts."""
    if not subscription:
        return False
    flags = [subscription[k] for k in ("subscribed", "live", "ok", "healthy") if isinstance(subscription.get(k), bool)]
    states = [subscription[k] for k in ("status", "state") if isinstance(subscription.get(k), str)]
    if any(flag is False for flag in flags) or any(s.lower() not in ("ok", "live", "subscribed") for s in states):
        return False
    return bool(flags or states)


def test_a_stuck_subscriber_is_noticed_and_stops_l1_from_lying(stack, editor):
    """Every subscriber connection stays open but receives nothing (the proxy holds it): a PATCH's
    broadcast never arrives. Within STUCK_NOTICE_WAIT the reader workers must stop answering v1
    from L1, and each worker's /health/cache/ must report its subscriber as not live."""
    article = make_article(title="v1 stuck subscriber")
    path = detail(article.id)
    warm_l1(stack.readers.url, path)
    stack.proxy.freeze()
    try:
        editor.patch(article.id, title="v2 stuck subscriber")
        fresh = wait_until(lambda: all(s.title == "v2 stuck subscriber" for s in burst(stack.readers.url + path)),
                           STUCK_NOTICE_WAIT, 0.1)
        seen = burst(stack.readers.url + path)
        health = health_of_every_worker(stack.readers.url, stack.reader_workers)
    finally:
        stack.proxy.thaw()
    problems = []
    if not fresh:
        stale = [s for s in seen if s.title != "v2 stuck subscriber"]
        problems.append(f"{STUCK_NOTICE_WAIT} s after the PATCH, with the broadcast stuck, {len(stale)} of "
                        f"{len(seen)} reads still show the old version, e.g. {stale[0] if stale else '?'}")
    live = {pid: doc.get("subscription") for pid, doc in health.items() if claims_live(doc.get("subscription"))}
    if live:
        problems.append(f"/health/cache/ reports a stuck subscriber as live: {dumps(live)}")
    assert not problems, "\n".join(problems)


def test_a_malformed_broadcast_does_not_stop_later_edits(stack, editor):
    """`PUBLISH <invalidation channel> hello`, then a PATCH: every reader worker must drop v1."""
    article = make_article(title="v1 malformed message")
    path = detail(article.id)
    warm_l1(stack.readers.url, path)
    channels = stack.invalidation_channels()
    assert channels, "no invalidation channel is subscribed in the stack's Redis"
    client = stack.redis.client()
    for channel in channels:
        assert client.publish(channel, "hello") >= 1
    editor.patch(article.id, title="v2 malformed message")
    fresh = wait_until(lambda: all(s.title == "v2 malformed message" for s in burst(stack.readers.url + path)),
                       EDIT_REACHES_L1_WAIT, 0.05)
    seen = burst(stack.readers.url + path)
    stale = [s for s in seen if s.title != "v2 malformed message"]
    health = health_of_every_worker(stack.readers.url, stack.reader_workers)
    assert fresh, (f"after `PUBLISH {channels[0]} hello`, an edit did not reach L1 within {EDIT_REACHES_L1_WAIT} s: "
                   f"{len(stale)} of {len(seen)} reads show the old version, e.g. {stale[0] if stale else '?'}; "
                   f"subscription per worker: {dumps({p: d.get('subscription') for p, d in health.items()})}")
