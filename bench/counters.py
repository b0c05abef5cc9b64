"""Per-request cost counters of the servers under test, read by the harness without HTTP.

Every gunicorn/granian worker started by the harness gets PROMETHEUS_MULTIPROC_DIR, so these
counters (and the cache library's own newsite_cache_* metrics) land in mmap files that the
harness reads with prometheus_client's MultiProcessCollector after each measurement.

The query counter is an execute wrapper added once per DatabaseWrapper (one per thread); its
cost is one integer increment per SQL statement.
"""

from prometheus_client import Counter

DB_QUERIES = Counter("bench_db_queries", "SQL statements executed by this process")
# Requests answered, counted server-side: wrk's count misses the requests still queued when it
# stops, so per-request ratios divide by this one.
REQUESTS = Counter("bench_requests", "HTTP requests answered by this process")


def _count_query(execute, sql, params, many, context):
    DB_QUERIES.inc()
    return execute(sql, params, many, context)


def install_query_counter(sender, connection, **kwargs):
    """connection_created receiver: add the counting wrapper unless this wrapper has it."""
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)
