"""Counter snapshots taken around each measurement; deltas are divided by wrk's request count.

- DB queries: bench_db_queries_total from the servers' multiprocess metric files (an execute
  wrapper in every worker), cross-checked once per run against pg_stat_database.
- Redis commands: INFO commandstats of the private redis-server (the harness's own INFO calls
  are excluded).
- Cache results per tier: newsite_cache_requests_total{tier,prefix,result} and
  newsite_cache_loads_total from the same metric files, when the cache library exports them.
- Edge: varnishstat MAIN.cache_hit / cache_miss / cache_hitpass.
- CPU: user + sys seconds of the named process trees (app server, Varnish, Redis) from /proc
  (bench/cpu.py), read last when the snapshot is taken.
"""

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from bench import cpu


def prom_samples(metrics_dir: Path) -> Counter:
    """Sum of every counter sample in a multiprocess dir, keyed by (name, sorted labels)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    out = Counter()
    for family in registry.collect():
        if family.type not in ("counter", "gauge", "histogram"):
            continue
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return out


def gc_pauses(metrics_dir: Path) -> dict:
    """bench_gc_pause_seconds of a server (all its workers, the whole run): {generation: {"count",
    "seconds", "over_10ms", "over_50ms", "max_le"}} (max_le: the smallest bucket bound holding
    every pause, inf when one exceeded the last)."""
    out: dict = {}
    buckets: dict = {}
    for (name, labels), value in prom_samples(metrics_dir).items():
        labels = dict(labels)
        gen = labels.get("generation")
        if gen is None or not name.startswith("bench_gc_pause_seconds"):
            continue
        row = out.setdefault(gen, {"count": 0, "seconds": 0.0})
        if name.endswith("_count"):
            row["count"] = int(value)
        elif name.endswith("_sum"):
            row["seconds"] = value
        elif name.endswith("_bucket"):
            buckets.setdefault(gen, {})[float(labels["le"])] = value
    for gen, row in out.items():
        cumulative = sorted(buckets.get(gen, {}).items())
        below = dict(cumulative)
        row["over_10ms"] = int(row["count"] - below.get(0.01, row["count"]))
        row["over_50ms"] = int(row["count"] - below.get(0.05, row["count"]))
        row["max_le"] = next((le for le, n in cumulative if n >= row["count"]), float("inf"))
    return out


def db_queries(samples: Counter) -> float:
    return sum(v for (name, _), v in samples.items() if name == "bench_db_queries_total")


def requests_served(samples: Counter) -> float:
    return sum(v for (name, _), v in samples.items() if name == "bench_requests_total")


def cache_results(samples: Counter) -> dict:
    """{tier: {result: count}} from newsite_cache_requests_total (summed over prefixes)."""
    tiers = {}
    for (name, labels), value in samples.items():
        if name != "newsite_cache_requests_total":
            continue
        labels = dict(labels)
        tier = labels.get("tier", "?")
        result = labels.get("result", "?")
        tiers.setdefault(tier, Counter())[result] += value
    return tiers


def cache_loads(samples: Counter) -> float:
    return sum(v for (name, _), v in samples.items() if name == "newsite_cache_loads_total")


def redis_commandstats(client: redis.Redis) -> Counter:
    stats = client.info("commandstats")
    out = Counter()
    for key, value in stats.items():
        cmd = key.removeprefix("cmdstat_")
        out[cmd] = value["calls"] if isinstance(value, dict) else 0
    return out


def varnish_counters(name_dir: Path | None) -> Counter:
    if name_dir is None or shutil.which("varnishstat") is None:
        return Counter()
    result = subprocess.run(
        ["varnishstat", "-n", str(name_dir), "-1", "-j", "-f", "MAIN.cache_hit", "-f", "MAIN.cache_miss",
         "-f", "MAIN.cache_hitpass", "-f", "MAIN.cache_hit_grace", "-f", "MAIN.client_req"],
        capture_output=True, text=True, timeout=10,
    )
    if result.returncode != 0:
        return Counter()
    data = json.loads(result.stdout)
    counters = data.get("counters", data)
    out = Counter()
    for key, value in counters.items():
        if isinstance(value, dict) and "value" in value:
            out[key.removeprefix("MAIN.")] = value["value"]
    return out


# /proc/net/tcp states: a connection the server has not finished with (in its backlog, being read,
# or closed by the client while the server still works on it).
_SYN_RECV, _CLOSE_WAIT, _ESTABLISHED = "03", "08", "01"


def busy_connections(ports, table: str | None = None) -> int:
    """Connections to one of `ports` (local side) the server has not finished: SYN_RECV, CLOSE_WAIT
    (wrk has gone, the server has not closed: the request is queued or running), or ESTABLISHED
    with unread bytes. An idle keep-alive connection (ESTABLISHED, nothing unread) is not busy."""
    if table is None:
        try:
            table = Path("/proc/net/tcp").read_text()
        except OSError:
            return 0
    wanted = {f"{port:04X}" for port in ports}
    busy = 0
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or fields[1].rsplit(":", 1)[-1] not in wanted:
            continue
        state, rx_queue = fields[3], int(fields[4].split(":")[1], 16)
        if state in (_SYN_RECV, _CLOSE_WAIT) or (state == _ESTABLISHED and rx_queue):
            busy += 1
    return busy


class Snapshot:
    """Everything counted at one instant, for one server (and Varnish when in front)."""

    def __init__(self, metrics_dir: Path, redis_client: redis.Redis, varnish_dir: Path | None = None,
                 cpu_roots: dict[str, int] | None = None):
        self.prom = prom_samples(metrics_dir)
        self.redis = redis_commandstats(redis_client)
        self.varnish = varnish_counters(varnish_dir)
        self.cpu = cpu.CpuSnapshot.take(cpu_roots or {})

    def delta(self, before: "Snapshot") -> dict:
        prom = Counter(self.prom)
        prom.subtract(before.prom)
        red = Counter(self.redis)
        red.subtract(before.redis)
        red.pop("info", None)
        red = Counter({k: v for k, v in red.items() if v})
        var = Counter(self.varnish)
        var.subtract(before.varnish)
        return {
            "db_queries": db_queries(prom),
            "served": requests_served(prom),
            "redis_commands": sum(red.values()),
            "redis_by_command": dict(red.most_common()),
            "cache": {tier: dict(results) for tier, results in cache_results(prom).items()
                      if any(results.values())},
            "loads": cache_loads(prom),
            "varnish": dict(var),
            "cpu": cpu.delta(before.cpu, self.cpu),  # {tree name: cpu.TreeDelta}
        }
