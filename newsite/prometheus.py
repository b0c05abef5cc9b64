"""prometheus-client's multiprocess values, told this process's id without a system call.

In multiprocess mode (PROMETHEUS_MULTIPROC_DIR) every increment asks `os.getpid()` whether the
process forked since the value was created (prometheus_client.values.MultiProcessValue): a
getpid system call per counter increment, five per WSGI front hit (the latency histogram's sum
and bucket, the responses counter, an L1 hit batch, the bench's request counter) and ~12% of
that hit's time (issue 29, cProfile). `MultiProcessValue(process_identifier=...)` is the
library's own switch for where the id comes from: here a module global, set at import and again
in a forked child (os.register_at_fork), so the answer stays what getpid() would say.

Must run before the first metric is created: newsite/__init__.py imports this first.
"""

import os

from prometheus_client import values

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


def process_id() -> int:
    return _pid


os.register_at_fork(after_in_child=_forked)

if "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ:
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)
