"""Issue 15, fault "Redis restarted from an older snapshot": Redis going back in time must not
bring back values whose invalidations it lost. Two app processes (the editor host and a reader
host, each with L1 + L2) on a private redis-server that is reloaded in place from an older RDB
(`DEBUG RELOAD NOSAVE`: same connections, subscriptions kept, the sequence back at the SAVE).

The first process to see the sequence below the highest it has seen re-applies the recent outbox
rows (caching/broadcast.py, cdn/purges.py reapply_recent); the others wait for it with L1 off."""

from __future__ import annotations

import pytest
import requests

from caching import keys
from tests.factories import make_article
from tests.freshness.conftest import burst, get
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FRESHNESS_STACK = {"edge": False, "l2only": False, "reader_workers": 1, "reader_threads": 4}


def detail(article_id: int) -> str:
    return f"/api/articles/{article_id}/"


def subscription(url: str) -> dict:
    return requests.get(url + "/health/cache/", timeout=10).json()["subscription"]


def namespace(stack) -> str:
    """The fetch face's namespace, found from the channel it uses."""
    [channel] = [c for c in stack.invalidation_channels() if ":nc" in c]
    return channel.rsplit(":db", 1)[0]


def sequence(stack) -> int:
    """The fetch face's invalidation sequence."""
    return int(stack.redis.client().get(keys.sequence_key(namespace(stack))) or 0)


def titles(stack, path: str) -> set:
    return {seen.title for host in (stack.editor, stack.readers) for seen in burst(host.url + path, 8)}


AFTER_SNAPSHOT = "test-rewind:after-snapshot"


def rewound(stack) -> bool:
    """Redis is back at the snapshot. (Not "the sequence is below what was seen": a process's
    rewind check, every second, may already have moved it past when the test reads it.)"""
    return stack.redis.client().get(AFTER_SNAPSHOT) is None


def _snapshot_then_edit(stack, editor, title: str):
    """An article read through both hosts (in L2 and both L1s); SAVE; then edited (both hosts
    read the edit). Returns the article."""
    article = make_article(title=title)
    for host in (stack.editor, stack.readers):
        assert get(host.url + detail(article.id)).title == title
    assert stack.redis.client().execute_command("SAVE")
    stack.redis.client().set(AFTER_SNAPSHOT, 1)  # gone once Redis goes back to the snapshot
    editor.patch(article.id, title=f"{title} edited")
    assert wait_until(lambda: titles(stack, detail(article.id)) == {f"{title} edited"}, 10)
    return article


def test_a_write_after_the_rewind_makes_every_process_repair_l2(stack, editor):
    """The message path: a later write's sequence is below what both processes saw. Without the
    re-application both L1s are cleared (the sequence went backwards) and refill from the old L2
    value, which nothing removes for its TTL (an hour)."""
    other = make_article(title="rewind other")
    article = _snapshot_then_edit(stack, editor, "Rewind one")
    seen_before = sequence(stack)
    assert stack.redis.client().execute_command("DEBUG", "RELOAD", "NOSAVE")
    assert rewound(stack)
    editor.patch(other.id, title="rewind other edited")

    # Some process noticed and moved the sequence past what it had seen; both are back on.
    assert wait_until(lambda: sequence(stack) > seen_before, 10)
    assert wait_until(lambda: all(subscription(host.url)["state"] == "ok" for host in (stack.editor, stack.readers)), 10)
    # Once both processes are back on, nothing they serve is older than the edit.
    assert titles(stack, detail(article.id)) == {"Rewind one edited"}
    assert titles(stack, detail(other.id)) == {"rewind other edited"}


def test_a_rewind_with_no_write_after_it_is_noticed_too(stack, editor):
    """No write after the rewind, no reconnect: each subscriber checks the sequence every second
    (REWIND_CHECK_EVERY), so the restored value is removed before any L1 stops hiding it."""
    article = _snapshot_then_edit(stack, editor, "Rewind two")
    seen_before = sequence(stack)
    assert stack.redis.client().execute_command("DEBUG", "RELOAD", "NOSAVE")
    assert rewound(stack)

    assert wait_until(lambda: sequence(stack) > seen_before, 10)  # noticed without any write
    assert wait_until(lambda: all(subscription(host.url)["state"] == "ok" for host in (stack.editor, stack.readers)), 10)
    # Each L1 was emptied when its process saw the rewind: the first reads come from L2.
    seen = [s for host in (stack.editor, stack.readers) for s in burst(host.url + detail(article.id), 8)]
    assert {s.title for s in seen} == {"Rewind two edited"}, seen


def test_a_rewind_drops_the_replica_fence_floor(stack, editor):
    """The fence's floor has no TTL: a Redis gone back in time keeps one older than the marks it
    lost. The process that notices drops it, so the next replica fill seeds it anew with the
    primary's current write position (caching/fence.py)."""
    floor = keys.write_floor_key(namespace(stack))
    client = stack.redis.client()
    client.set(floor, "123")  # in the snapshot below
    _snapshot_then_edit(stack, editor, "Rewind three")
    seen_before = sequence(stack)
    assert client.execute_command("DEBUG", "RELOAD", "NOSAVE")
    assert client.get(floor) == b"123"
    assert wait_until(lambda: sequence(stack) > seen_before, 10)
    assert wait_until(lambda: all(subscription(host.url)["state"] == "ok" for host in (stack.editor, stack.readers)), 10)
    assert client.get(floor) is None
