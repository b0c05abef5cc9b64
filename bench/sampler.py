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
  `format_report(result)`: a plain-text table;
- `sample_reads(...)`: a reader as a process of its own (the benchmark's many-process load, no
  shared GIL), keeping its reads compactly in a `ReadLog` that `ReadLog.reads()` turns back into
  `Read`s for `classify`.

All times are `time.monotonic()`: readers and writer share one clock (on Linux CLOCK_MONOTONIC,
the same for every process of the machine, so reader processes compare with the writer's times). Versions
are the article's `version` field (incremented on every save), so "older" is a comparison of
integers. A read is *stale* when it began more than `window` seconds after some write of its
article returned and shows a version lower than that write's. Its *lag* is how long after the
first such write returned it began. Per write, the *stale window* is the lag of the last stale
read it caused (0 when none): "how long this edit stayed invisible somewhere".
"""

from __future__ import annotations

import bisect
import http.client
import itertools
import json
import math
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

DETAIL_PATH = "/api/articles/{id}/"
WORKER_HEADER = "X-Bench-Worker"  # the pid of the process that answered (bench/middleware.py)


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
    worker: str | None = None  # which process answered (the benchmark servers' X-Bench-Worker)


@dataclass(frozen=True, slots=True)
class Write:
    article_id: int
    version: int
    started: float
    returned: float
    kind: str = "api"  # how it was written (the benchmark alternates "api" and "admin")


@dataclass(frozen=True, slots=True)
class Edit:
    """What a `patch` callable may return instead of the bare version: the version, when the
    write's response had returned (before any bookkeeping of the caller, e.g. reading the version
    back), and how it was written."""

    version: int
    returned: float
    kind: str = "api"


@dataclass(frozen=True, slots=True)
class StaleRead:
    read: Read
    expected: int  # the version of the newest write returned before the read began (- window)
    lag: float  # seconds between the first write newer than read.version returning and the read

    def __str__(self) -> str:
        r = self.read
        return (f"{r.tier} article {r.article_id}: saw version {r.version}, expected >= {self.expected}, "
                f"began {self.lag * 1000:.1f} ms after the write returned (X-Cache={r.x_cache} "
                f"X-Cache-Edge={r.edge} Age={r.age} worker={r.worker})")


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
    window_of: dict[Write, float] = field(default_factory=dict)  # the same, by write (to merge tiers)

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
    result.window_of = dict(zip(all_writes, result.write_windows, strict=True))
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
                    headers.get("X-Cache"), headers.get("X-Cache-Edge"), headers.get("Age"),
                    headers.get(WORKER_HEADER))

    def run(self) -> None:
        ids = itertools.cycle(self.article_ids[self.offset % len(self.article_ids):] +
                              self.article_ids[:self.offset % len(self.article_ids)])
        with requests.Session() as session:
            while not self.stop.is_set():
                self.reads.append(self.read_once(session, next(ids)))


class ReadLog:
    """One reader process's reads, compact (about 50 bytes a read, so a million fit easily and
    pickle back to the parent fast): parallel arrays, header values as indexes into `labels`."""

    def __init__(self, tier: str, article_ids: Sequence[int]):
        self.tier = tier
        self.article_ids = tuple(article_ids)
        self.started = array("d")
        self.finished = array("d")
        self.article = array("H")  # index into article_ids
        self.version = array("q")  # -1: no version in the answer
        self.status = array("H")
        self.x_cache = array("h")  # index into labels, -1: header absent
        self.edge = array("h")
        self.age = array("l")  # -1: header absent or not an integer
        self.worker = array("l")  # pid, 0: header absent
        self.labels: list[str] = []
        self._label_index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.started)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_label_index"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._label_index = {label: i for i, label in enumerate(self.labels)}

    def _label(self, value: str | None) -> int:
        if value is None:
            return -1
        index = self._label_index.get(value)
        if index is None:
            index = self._label_index[value] = len(self.labels)
            self.labels.append(value)
        return index

    def add(self, article: int, started: float, finished: float, version: int | None, status: int,
            x_cache: str | None = None, edge: str | None = None, age: str | None = None,
            worker: str | None = None) -> None:
        self.started.append(started)
        self.finished.append(finished)
        self.article.append(article)
        self.version.append(-1 if version is None else version)
        self.status.append(status)
        self.x_cache.append(self._label(x_cache))
        self.edge.append(self._label(edge))
        self.age.append(int(age) if age is not None and age.isdigit() else -1)
        self.worker.append(int(worker) if worker is not None and worker.isdigit() else 0)

    def reads(self) -> Iterable[Read]:
        """The reads as `Read`s, one at a time (a generator: classify() keeps only the stale)."""
        labels, ids = self.labels, self.article_ids
        for i in range(len(self.started)):
            version, xc, edge, age, worker = self.version[i], self.x_cache[i], self.edge[i], self.age[i], self.worker[i]
            yield Read(self.tier, ids[self.article[i]], self.started[i], self.finished[i],
                       None if version < 0 else version, self.status[i],
                       labels[xc] if xc >= 0 else None, labels[edge] if edge >= 0 else None,
                       str(age) if age >= 0 else None, str(worker) if worker else None)

    def workers(self) -> dict[int, int]:
        """Reads per answering pid (0: unknown)."""
        counts: dict[int, int] = {}
        for pid in self.worker:
            counts[pid] = counts.get(pid, 0) + 1
        return counts


def sample_reads(tier: str, base_url: str, article_ids: Sequence[int], *, start_at: float, stop_at: float,
                 offset: int = 0, path: str = DETAIL_PATH, timeout: float = 10.0, max_reads: int | None = None,
                 error_pause: float = 0.0, stop_file: str | None = None) -> ReadLog:
    """GET `path` round-robin over `article_ids` from `start_at` until `stop_at` (monotonic times,
    see the module docstring), at most `max_reads` times, and return the reads. Meant to run in a
    process of its own (e.g. a spawn-context ProcessPoolExecutor): http.client with keep-alive
    where the server allows it (Varnish does; gunicorn's sync workers close each connection,
    http.client then reconnects), one request at a time. `error_pause`: seconds to wait after a
    request got no answer (a server restarting refuses connections in microseconds). `stop_file`:
    stop sooner, once that file exists (looked for every 32 reads)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    log = ReadLog(tier, article_ids)
    n = len(article_ids)
    paths = [path.format(id=article_id) for article_id in article_ids]
    index = offset % n
    while time.monotonic() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.monotonic())))
    while True:
        started = time.monotonic()
        if started >= stop_at or (max_reads is not None and len(log) >= max_reads):
            break
        if stop_file is not None and len(log) % 32 == 0 and os.path.exists(stop_file):
            break
        try:
            conn.request("GET", paths[index])
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            log.add(index, started, time.monotonic(), None, 0)
            index = (index + 1) % n
            if error_pause:
                time.sleep(error_pause)
            continue
        finished = time.monotonic()
        version = None
        if response.status == 200:
            try:
                version = int(json.loads(body)["version"])
            except (ValueError, KeyError, TypeError):
                version = None
        log.add(index, started, finished, version, response.status, response.getheader("X-Cache"),
                response.getheader("X-Cache-Edge"), response.getheader("Age"), response.getheader(WORKER_HEADER))
        index = (index + 1) % n
    conn.close()
    return log


class Writer(threading.Thread):
    """Edits the articles round-robin through `patch(article_id, title) -> new version` (or an
    `Edit`), one write every `interval` seconds (after the previous one returned) until `stop`
    is set."""

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
                edit = self.patch(article_id, self.title.format(n=n))
                if isinstance(edit, Edit):
                    self.writes.append(Write(article_id, int(edit.version), started, edit.returned, edit.kind))
                else:
                    self.writes.append(Write(article_id, int(edit), started, time.monotonic()))
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
