"""L1's trust deadline (issue 27; caching/l1.py): what a lapse empties, what L1 keeps while it is
not trusted, and what trust coming back does. The end-to-end bound, on a real partition, is
tests/freshness/test_partition.py."""

from __future__ import annotations

import threading
import time

from caching import l1 as l1_module
from caching.l1 import EXPIRES, L1, VALUE, Put

TRUST = 1.0


def make_l1() -> L1:
    return L1(max_bytes=1 << 20, max_entries=100, max_item_bytes=1 << 16, tag_seq_ttl=600, trust_seconds=TRUST)


def entry(value, ttl: float = 30.0) -> tuple:
    return l1_module.entry(value, time.time(), ("t",), 100, time.monotonic() + ttl, "t")


def test_a_lapse_empties_l1_once_and_refuses_fills_that_started_before():
    l1 = make_l1()
    lapses = []
    l1.on_lapse = lambda: lapses.append(1)
    l1.trust_until(time.monotonic())
    assert l1.put("a", entry("v1"), l1.since()) is Put.STORED
    started_while_trusted = l1.since()
    assert l1.get("a")[VALUE] == "v1"

    l1.revoke_trust()  # what a lost connection does; a deadline passing does the same at the next lookup

    assert l1.get("a") is None and len(l1) == 0
    assert l1.put("b", entry("v1"), started_while_trusted) is Put.REFUSED
    l1.revoke_trust()
    assert lapses == [1] and l1.snapshot()["trust_lapses"] == 1 and l1.snapshot()["trusted"] is False


def test_while_not_trusted_a_copy_lives_trust_seconds_from_the_start_of_its_load():
    l1 = make_l1()
    l1.revoke_trust(counted=False)
    guard = l1.since()
    assert l1.put("a", entry("v2", ttl=30.0), guard) is Put.STORED
    kept = l1.get("a")
    assert kept[VALUE] == "v2" and kept[EXPIRES] <= guard.started + TRUST
    old = guard._replace(started=time.monotonic() - TRUST - 0.01)
    assert l1.put("b", entry("v2"), old) is Put.LAPSED and l1.get("b") is None
    assert l1.put("c", entry("v2"), guard._replace(started=0.0)) is Put.LAPSED  # unknown start: not kept


def test_trust_back_empties_what_was_loaded_meanwhile_and_keeps_long_copies_again():
    l1 = make_l1()
    l1.revoke_trust(counted=False)
    during = l1.since()
    assert l1.put("a", entry("v2"), during) is Put.STORED

    l1.trust_until(time.monotonic())

    assert l1.get("a") is None
    assert l1.put("a", entry("v3"), during) is Put.REFUSED  # loaded before trust came back
    fresh = entry("v3", ttl=30.0)
    assert l1.put("a", fresh, l1.since()) is Put.STORED and l1.get("a")[EXPIRES] == fresh[EXPIRES]
    assert l1.snapshot()["trusted"] is True


def test_lookups_racing_a_lapse_never_see_an_entry_from_before_it():
    """8 threads read while the main thread revokes trust: after the revoke has returned, no
    lookup anywhere answers the entry filled before it."""
    l1 = make_l1()
    l1.trust_until(time.monotonic())
    assert l1.put("a", entry("v1"), l1.since()) is Put.STORED
    revoked = threading.Event()
    late_hits = []
    stop = threading.Event()

    def reader():
        for _ in range(200_000):
            if stop.is_set():
                return
            after = revoked.is_set()
            found = l1.get("a")
            if after and found is not None:
                late_hits.append(found[VALUE])

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    l1.revoke_trust()
    revoked.set()
    time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert late_hits == []
    assert l1.lapses == 1
