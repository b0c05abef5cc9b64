"""Hit ratios per tier and per key prefix, from caching's per-process counters
(caching.metrics.all_prefix_stats): this process since start, this process over recent windows
(the sampler), all processes since start. /health/cache/ (newsite.ops.cachestats) and the admin
Cache page show them.

- since start, this process: the counters themselves (exact, per process).
- recent windows, this process: deltas between samples of the same counters, taken at most every
  SAMPLE_EVERY seconds by RequestLatencyMiddleware (maybe_sample) and by every window() call,
  kept 15 minutes.
- since start, all processes: the prometheus-client multiprocess files (when
  PROMETHEUS_MULTIPROC_DIR is set). L1 hits reach them in batches of up to 64 per prefix and
  process (caching.metrics.L1_HIT_BATCH), so this view may lag by that much per process.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

from caching import metrics as cache_metrics
from caching.metrics import hit_ratio

SAMPLE_EVERY = 10.0
KEEP_SECONDS = 900.0
WINDOWS = (60, 300, 900)

# (monotonic time, {prefix: (l1_hit, l1_miss, l2_hit, l2_miss, l2_stale)})
_samples: deque = deque(maxlen=int(KEEP_SECONDS // SAMPLE_EVERY) + 2)
_samples.append((time.monotonic(), {}))  # this process's counters start from zero
_last_sample = time.monotonic()
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # caching resets its in-process counters in a forked child: old samples would go negative.
    global _last_sample, _lock
    _samples.clear()
    _lock = threading.Lock()
    _samples.append((time.monotonic(), {}))  # the counters start from zero in the child
    _last_sample = time.monotonic()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _counters() -> dict[str, tuple[int, int, int, int, int]]:
    return {
        name: (s.l1_hit, s.l1_miss, s.l2_hit, s.l2_miss, s.l2_stale)
        for name, s in cache_metrics.all_prefix_stats().items()
    }


def sample(now: float | None = None) -> None:
    """Record the current counters of this process (drops samples older than KEEP_SECONDS)."""
    global _last_sample
    now = time.monotonic() if now is None else now
    with _lock:
        _samples.append((now, _counters()))
        _last_sample = now
        while _samples and now - _samples[0][0] > KEEP_SECONDS + SAMPLE_EVERY:
            _samples.popleft()


def maybe_sample() -> None:
    """Cheap when nothing is due: one clock read and a comparison."""
    if time.monotonic() - _last_sample >= SAMPLE_EVERY:
        sample()


def _tiers(l1h: int, l1m: int, l2h: int, l2m: int, l2s: int) -> dict:
    return {
        "l1": {"hit": l1h, "miss": l1m, "hit_ratio": hit_ratio(l1h, l1h + l1m)},
        "l2": {"hit": l2h, "stale": l2s, "miss": l2m, "hit_ratio": hit_ratio(l2h + l2s, l2h + l2s + l2m)},
    }


def summarise(per_prefix: dict[str, tuple]) -> dict:
    """Hit ratio per tier and per prefix from (l1_hit, l1_miss, l2_hit, l2_miss, l2_stale)."""
    prefixes = {}
    sums = [0, 0, 0, 0, 0]
    for name, counts in sorted(per_prefix.items()):
        if not any(counts):
            continue
        for i, v in enumerate(counts):
            sums[i] += v
        prefixes[name] = _tiers(*counts)
    return {"tiers": _tiers(*sums), "prefixes": prefixes}


def window(seconds: float, now: float | None = None) -> dict:
    """Hit ratios of this process over the last `seconds`: the counters now minus the newest
    sample at least `seconds` old. A process younger than that (or not sampled that far back)
    reports over what it has; "seconds" says how long the window really is."""
    now = time.monotonic() if now is None else now
    maybe_sample()
    current = _counters()
    with _lock:
        samples = list(_samples)
    base_time, base = samples[0] if samples else (now, current)
    for t, counters in samples:  # oldest first
        if now - t < seconds:
            break
        base_time, base = t, counters
    delta = {}
    for name, values in current.items():
        old = base.get(name, (0, 0, 0, 0, 0))
        delta[name] = tuple(max(0, a - b) for a, b in zip(values, old, strict=True))
    out = summarise(delta)
    out["seconds"] = round(max(0.0, now - base_time), 1)
    return out


def cluster_since_start() -> dict | None:
    """Hit ratios of all processes sharing PROMETHEUS_MULTIPROC_DIR, since the server started;
    None when prometheus-client is not in multiprocess mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path or not os.path.isdir(path):
        return None
    from prometheus_client.multiprocess import MultiProcessCollector

    cache_metrics.flush_all()
    per_prefix: dict[str, list[int]] = {}
    slot = {("l1", "hit"): 0, ("l1", "miss"): 1, ("l2", "hit"): 2, ("l2", "miss"): 3, ("l2", "stale"): 4}
    for family in MultiProcessCollector(None, path=path).collect():
        if family.name != "newsite_cache_requests":
            continue
        for s in family.samples:
            if not s.name.endswith("_total"):
                continue
            index = slot.get((s.labels.get("tier"), s.labels.get("result")))
            if index is not None:
                per_prefix.setdefault(s.labels.get("prefix", "?"), [0] * 5)[index] += int(s.value)
    return summarise({k: tuple(v) for k, v in per_prefix.items()})


def process_since_start() -> dict:
    """Hit ratios of this process since it started (or forked)."""
    return summarise(_counters())
