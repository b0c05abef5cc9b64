"""What one benchmark run carries from setup to report: the modes and workloads, one measured
row (Result), the run's state (Context), and the harness's log line."""

import time
from dataclasses import dataclass, field

import redis

from bench.stack import Stack

# bare: a WSGI constant answering the hot article's L1 hit bytes (bench/bare_wsgi.py); hot workload only.
MODES = ("floor", "bare", "nocache", "cache_page", "l2", "l1l2", "l1l2-asgi", "varnish")
# Modes served by newsite.asgi under granian's ASGI interface (settings of the mode before "-asgi").
ASGI_SUFFIX = "-asgi"
WORKLOADS = ("hot", "zipf", "feed")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Result:
    scenario: str
    workload: str
    mode: str
    status: str = "ok"  # "ok" or "n/a: <reason>"
    req_s: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    non_2xx: int = 0
    errors: int = 0
    db_per_req: float | None = None
    redis_per_req: float | None = None
    redis_top: str = ""
    hit: str = ""
    cpu_ms: dict = field(default_factory=dict)  # {"app"|"varnish"|"redis": CPU ms per request served}
    extra: dict = field(default_factory=dict)


@dataclass
class Context:
    opts: object
    stack: Stack
    env: dict
    wrk: str
    redis_client: redis.Redis | None = None
    servers: dict = field(default_factory=dict)  # mode -> AppServer | reason str
    varnish: tuple | str | None = None  # (port, name_dir) or reason
    workloads: dict = field(default_factory=dict)  # name -> Workload | reason str
    data: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    results: list = field(default_factory=list)
    fresh: dict = field(default_factory=dict)
    coldkey: list = field(default_factory=list)
    warmstart: dict = field(default_factory=dict)
    coherence: dict = field(default_factory=dict)
