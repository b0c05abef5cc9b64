"""6. A million distinct keys through L1: its bytes (and entries) stay under the bounds."""

import time

import pytest

from caching import engine, fetcher, metrics
from caching.l1 import Put, entry

from .conftest import cache_settings

MAX_BYTES = 2 * 1024 * 1024


@pytest.mark.slow
def test_million_keys_keep_l1_under_its_byte_bound():
    with cache_settings(L1_MAX_BYTES=MAX_BYTES, L1_MAX_ENTRIES=10**7):
        l1 = engine.default().l1
        assert engine.default().subscriber.wait_subscribed(5)  # its first subscribe clears L1
        stats = metrics.stats_for("bounds")
        since = l1.since()
        peak = 0
        expires = time.monotonic() + 600
        values = ["x" * n for n in range(300)]
        tag_names = [f"article:{n}" for n in range(5000)]
        for i in range(1_000_000):
            key = f"bounds:{i}"
            value = values[i % 300]
            # The size estimate Fills.put_l1 computes: envelope bytes + fixed overheads + key.
            nbytes = len(value) + 40 + 320 + 120 + len(key)
            if l1.put(key, entry(value, 0.0, (tag_names[i % 5000],), nbytes, expires, stats.prefix), since) in (
                    Put.REFUSED, Put.LAPSED):
                # L1 was emptied meanwhile (this loop can hold the subscriber off long enough for
                # L1's trust to lapse: caching/l1.py): go on from a new mark.
                since = l1.since()
                l1.put(key, entry(value, 0.0, (tag_names[i % 5000],), nbytes, expires, stats.prefix), since)
            if i % 50_000 == 0:
                peak = max(peak, l1.nbytes)
                assert l1.nbytes <= MAX_BYTES
        snap = l1.snapshot()
        assert snap["bytes"] <= MAX_BYTES and peak <= MAX_BYTES
        assert 0 < snap["entries"] < 20_000  # evicted down to what fits
        assert snap["tags_indexed"] <= snap["entries"]  # the tag index shrinks with evictions
        assert l1.get("bounds:999999") is not None and l1.get("bounds:0") is None


def test_entry_count_bound():
    with cache_settings(L1_MAX_ENTRIES=100):
        proc = fetcher.current()
        assert proc.engine.subscriber.wait_subscribed(5)
        stats = metrics.stats_for("bounds")
        since = proc.l1.since()
        for i in range(1000):
            proc.fills.put_l1(f"bounds:{i}", i, (), time.time() + 600, 0.0, 10, stats, since)
        assert len(proc.l1) == 100
