"""The stale-read sampler (issue 14): readers through each tier race a writer, and every read that
began after a write had returned yet shows an older version is counted, per tier.

Pure building blocks, no stack of its own (tests/freshness starts one; `make bench --scenario
coherence` can start another and call run()):

- `Reader`: a thread GETting article details through one tier's base URL, round-robin over the
  articles, recording each read (start, end, the `version` it saw, X-Cache headers);
- `Writer`: a thread editing the articles through a `patch(article_id, title) -> version`
  callable, recording when each write started and returned and the version it made;
- `classify(reads, writes, window=...)`: the accounting, a pure function of the two records;
- `run(...)`: readers per tier plus one writer for `duration` seconds -> `Result`;
  `format_report(result)`: a plain-text table.

All times are `time.monotonic()` of this process: readers and writer share one clock. Versions
are the article's `version` field (incremented on every save), so "older" is a comparison of
integers. A read is *stale* when it began more than `window` seconds after some write of its
article returned and shows a version lower than that write's. Its *lag* is how long after the
first such write returned it began. Per write, the *stale window* is the lag of the last stale
read it caused (0 when none): "how long this edit stayed invisible somewhere".
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import requests

DETAIL_PATH = "/api/articles/{id}/"


@dataclass(frozen=True, slots=True)
class Read:
    tier: str
    article_id: int
    started: float
    finished: float
    version: int | None  # None: no version in the answer (error, non-JSON)
    status: int
    x_cache: str | None = None
    edge: str | None = None  # X-Cache-Edge
    age: str | None = None


@dataclass(frozen=True, slots=True)
class Write:
    article_id: int
    version: int
    started: float
    returned: float


@dataclass(frozen=True, slots=True)
class StaleRead:
    read: Read
    expected: int  # the version of the newest write returned before the read began (- window)
    lag: float  # seconds between the first write newer than read.version returning and the read

    def __str__(self) -> str:
        r = self.read
        return (f"{r.tier} article {r.article_id}: saw version {r.version}, expected >= {self.expected}, "
                f"began {self.lag * 1000:.1f} ms after the write returned (X-Cache={r.x_cache} "
                f"X-Cache-Edge={r.edge} Age={r.age})")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class TierResult:
    tier: str
    window: float
    reads: int = 0
    errors: int = 0  # reads without a version (non-200, bad body, connection error)
    stale_reads: list[StaleRead] = field(default_factory=list)
    write_windows: list[float] = field(default_factory=list)  # per write, see the module docstring

    @property
    def stale(self) -> int:
        return len(self.stale_reads)

    @property
    def worst(self) -> StaleRead | None:
        return max(self.stale_reads, key=lambda s: s.lag, default=None)

    def lag_percentile(self, q: float) -> float | None:
        return percentile([s.lag for s in self.stale_reads], q)

    def window_percentile(self, q: float) -> float | None:
        return percentile(self.write_windows, q)

    def writes_stale_after(self, seconds: float) -> int:
        return sum(1 for w in self.write_windows if w > seconds)


def classify(tier: str, reads: Iterable[Read], writes: Iterable[Write], *, window: float = 0.0) -> TierResult:
    """The stale-read accounting of one tier's reads against the writes (pure)."""
    result = TierResult(tier=tier, window=window)
    by_article: dict[int, list[Write]] = {}
    for write in sorted(writes, key=lambda w: w.returned):
        by_article.setdefault(write.article_id, []).append(write)
    returned = {a: [w.returned for w in ws] for a, ws in by_article.items()}
    running_max = {a: list(itertools.accumulate((w.version for w in ws), max)) for a, ws in by_article.items()}
    worst_per_write: dict[int, float] = {}  # id(write) -> lag of its last stale read
    for read in reads:
        result.reads += 1
        if read.version is None:
            result.errors += 1
            continue
        article_writes = by_article.get(read.article_id)
        if not article_writes:
            continue
        n = bisect.bisect_right(returned[read.article_id], read.started - window)
        if n == 0 or read.version >= running_max[read.article_id][n - 1]:
            continue
        first_newer = next(w for w in article_writes[:n] if w.version > read.version)
        lag = read.started - first_newer.returned
        result.stale_reads.append(StaleRead(read, running_max[read.article_id][n - 1], lag))
        for w in article_writes[:n]:
            if w.version > read.version:
                key = id(w)
                worst_per_write[key] = max(worst_per_write.get(key, 0.0), read.started - w.returned)
    all_writes = [w for ws in by_article.values() for w in ws]
    result.write_windows = [worst_per_write.get(id(w), 0.0) for w in all_writes]
    return result


# --- The threads ---------------------------------------------------------------------------------


class Reader(threading.Thread):
    """GETs `base_url + path(article_id)` round-robin over `article_ids` until `stop` is set."""

    def __init__(self, tier: str, base_url: str, article_ids: Sequence[int], stop: threading.Event, *,
                 path: str = DETAIL_PATH, offset: int = 0, timeout: float = 10.0):
        super().__init__(name=f"sampler-reader-{tier}-{offset}", daemon=True)
        self.tier = tier
        self.base_url = base_url.rstrip("/")
        self.article_ids = list(article_ids)
        self.stop = stop
        self.path = path
        self.offset = offset
        self.timeout = timeout
        self.reads: list[Read] = []

    def read_once(self, session: requests.Session, article_id: int) -> Read:
        started = time.monotonic()
        try:
            response = session.get(self.base_url + self.path.format(id=article_id), timeout=self.timeout)
        except requests.RequestException:
            return Read(self.tier, article_id, started, time.monotonic(), None, 0)
        finished = time.monotonic()
        version = None
        if response.status_code == 200:
            try:
                version = int(response.json()["version"])
            except (ValueError, KeyError, TypeError):
                version = None
        headers = response.headers
        return Read(self.tier, article_id, started, finished, version, response.status_code,
                    headers.get("X-Cache"), headers.get("X-Cache-Edge"), headers.get("Age"))

    def run(self) -> None:
        ids = itertools.cycle(self.article_ids[self.offset % len(self.article_ids):] +
                              self.article_ids[:self.offset % len(self.article_ids)])
        with requests.Session() as session:
            while not self.stop.is_set():
                self.reads.append(self.read_once(session, next(ids)))


class Writer(threading.Thread):
    """Edits the articles round-robin through `patch(article_id, title) -> new version`, one
    write every `interval` seconds (after the previous one returned) until `stop` is set."""

    def __init__(self, article_ids: Sequence[int], patch: Callable[[int, str], int], stop: threading.Event, *,
                 interval: float = 0.1, title: str = "sampled edit {n}"):
        super().__init__(name="sampler-writer", daemon=True)
        self.article_ids = list(article_ids)
        self.patch = patch
        self.stop = stop
        self.interval = interval
        self.title = title
        self.writes: list[Write] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for n, article_id in enumerate(itertools.cycle(self.article_ids), start=1):
                if self.stop.is_set():
                    return
                started = time.monotonic()
                version = self.patch(article_id, self.title.format(n=n))
                self.writes.append(Write(article_id, int(version), started, time.monotonic()))
                if self.stop.wait(self.interval):
                    return
        except Exception as exc:  # noqa: BLE001 (re-raised by run(): a failed writer invalidates the run)
            self.error = exc


@dataclass
class Result:
    duration: float
    writes: list[Write]
    tiers: dict[str, TierResult]
    reads: dict[str, list[Read]]


def run(*, tiers: dict[str, str], article_ids: Sequence[int], patch: Callable[[int, str], int],
        duration: float, readers_per_tier: int = 4, write_interval: float = 0.1,
        windows: dict[str, float] | None = None, path: str = DETAIL_PATH) -> Result:
    """Readers (`readers_per_tier` per tier: {name: base URL}) and one writer for `duration` s.
    `windows`: per tier, how long after a write returned an older version is still allowed
    (default 0). Raises the writer's exception if it failed."""
    windows = windows or {}
    stop = threading.Event()
    readers = [Reader(tier, url, article_ids, stop, path=path, offset=i)
               for tier, url in tiers.items() for i in range(readers_per_tier)]
    writer = Writer(article_ids, patch, stop, interval=write_interval)
    started = time.monotonic()
    for thread in (*readers, writer):
        thread.start()
    stop.wait(duration)
    stop.set()
    for thread in (*readers, writer):
        thread.join(30)
    if writer.error is not None:
        raise writer.error
    reads: dict[str, list[Read]] = {tier: [] for tier in tiers}
    for reader in readers:
        reads[reader.tier].extend(reader.reads)
    results = {tier: classify(tier, reads[tier], writer.writes, window=windows.get(tier, 0.0)) for tier in tiers}
    return Result(time.monotonic() - started, writer.writes, results, reads)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def format_report(result: Result) -> str:
    """A plain-text table: per tier reads, errors, stale reads past the window, lag p50/p99,
    per-write stale window p50/p99 and the worst stale read."""
    lines = [f"stale-read sampler: {result.duration:.1f} s, {len(result.writes)} writes",
             f"{'tier':<10} {'reads':>7} {'errors':>6} {'window':>7} {'stale':>6} {'lag p50':>8} {'lag p99':>8} "
             f"{'win p50':>8} {'win p99':>8}"]
    for tier, t in result.tiers.items():
        lines.append(f"{tier:<10} {t.reads:>7} {t.errors:>6} {t.window * 1000:>5.0f}ms {t.stale:>6} "
                     f"{_ms(t.lag_percentile(50)):>8} {_ms(t.lag_percentile(99)):>8} "
                     f"{_ms(t.window_percentile(50)):>8} {_ms(t.window_percentile(99)):>8}")
    for tier, t in result.tiers.items():
        if t.worst is not None:
            lines.append(f"worst {tier}: {t.worst}")
    return "\n".join(lines)
