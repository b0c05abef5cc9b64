"""bench/sampler.py's accounting (pure): which reads are stale, their lag, per-write windows."""

from bench.sampler import Read, Write, classify, percentile


def read(started, version, article=1, tier="app"):
    return Read(tier, article, started, started + 0.001, version, 200 if version is not None else 500)


WRITES = [Write(1, 2, 0.9, 1.0), Write(1, 3, 1.9, 2.0), Write(2, 2, 0.5, 0.6)]


def test_a_read_that_began_after_a_write_returned_must_show_its_version():
    reads = [read(0.95, 1), read(1.01, 1), read(1.5, 2), read(2.2, 2), read(2.3, 3), read(0.7, 1, article=2)]
    result = classify("app", reads, WRITES)
    assert result.reads == 6 and result.errors == 0
    stale = sorted((s.read.started, s.expected, round(s.lag, 3)) for s in result.stale_reads)
    # 0.95 began while the write was in flight: not stale; 0.7 on article 2 began after its write
    assert stale == [(0.7, 2, 0.1), (1.01, 2, 0.01), (2.2, 3, 0.2)]
    assert sorted(round(w, 3) for w in result.write_windows) == [0.01, 0.1, 0.2]


def test_a_window_excuses_reads_that_began_soon_after_the_write():
    reads = [read(1.5, 1), read(2.5, 1), read(3.1, 2), read(1.2, None)]
    result = classify("edge", reads, WRITES, window=1.0)
    assert result.errors == 1
    assert [(s.read.started, s.expected) for s in result.stale_reads] == [(2.5, 2), (3.1, 3)]
    assert round(result.worst.lag, 3) == 1.5
    assert result.writes_stale_after(1.0) == 2


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 99) == 99
