"""Per-request cost counters of the servers under test, read by the harness without HTTP.

Every gunicorn/granian worker started by the harness gets PROMETHEUS_MULTIPROC_DIR, so these
counters (and the cache library's own newsite_cache_* metrics) land in mmap files that the
harness reads with prometheus_client's MultiProcessCollector after each measurement.

The query counter is an execute wrapper added once per DatabaseWrapper (one per thread); its
cost is one integer increment per SQL statement.
"""

import gc
import time

from prometheus_client import Counter, Histogram

DB_QUERIES = Counter("bench_db_queries", "SQL statements executed by this process")
# Requests answered, counted server-side: wrk's count misses the requests still queued when it
# stops, so per-request ratios divide by this one.
REQUESTS = Counter("bench_requests", "HTTP requests answered by this process")


# Every garbage collection of the process, by generation: how long it held the GIL (issue 29:
# where the L1+L2 tail goes). Two callbacks per collection, the same in every mode.
GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
GC_PAUSES = Histogram("bench_gc_pause_seconds", "Garbage collections of this process, by generation",
                      ["generation"], buckets=GC_PAUSE_BUCKETS)
_gc_started = [0.0]
_gc_children = {}
# Pauses measured, not yet in the histogram: the callback only appends (list.append is atomic),
# count_request() moves them. Observing inside the callback deadlocked a worker (2026-12-07):
# a collection that starts while prometheus-client holds its multiprocess value lock (creating
# a metric child) re-entered that non-reentrant lock from the same thread, and the worker
# never answered again (the bench saw "GET ... failed" for a whole mode).
_gc_pending: list = []


def _gc_callback(phase, info):
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    _gc_pending.append((info["generation"], time.perf_counter() - _gc_started[0]))


def _flush_gc_pauses() -> None:
    while _gc_pending:
        try:
            generation, seconds = _gc_pending.pop()
        except IndexError:  # another thread took the last one
            return
        child = _gc_children.get(generation)
        if child is None:
            child = _gc_children[generation] = GC_PAUSES.labels(str(generation))
        child.observe(seconds)


def count_request() -> None:
    """One request answered (REQUESTS), and the collections measured since into GC_PAUSES."""
    REQUESTS.inc()
    if _gc_pending:
        _flush_gc_pauses()


def install_gc_probe() -> None:
    if _gc_callback not in gc.callbacks:
        gc.callbacks.append(_gc_callback)


def _count_query(execute, sql, params, many, context):
    DB_QUERIES.inc()
    return execute(sql, params, many, context)


def install_query_counter(sender, connection, **kwargs):
    """connection_created receiver: add the counting wrapper unless this wrapper has it."""
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)
