"""Write latency with and without the edge acknowledgement (issue 27), in one process.

    python -m bench.edge_ack_cost --database-url postgres://127.0.0.1:5432/newsite_bench_smoke_e

A private redis-server (cache db 0; broker db 1 with no worker: a drain message costs only its
send) and a varnishd running deploy/varnish/default.vcl (nothing behind it: the VCL answers PURGE
itself), both on 127.0.0.1 free ports and stopped at the end; Django on the given, migrated
database. Each write is the production path without HTTP: a transaction invalidating one tag
(caching.invalidate_tags_on_commit: the outbox row inside, then on commit L2 + the L1 broadcast,
then the edge or the drain). Writes alternate CDN_OUTBOX["EDGE_ACK_WAIT"] between 0 (the drain
only, as before issue 27) and --wait (the writer purges the edge and waits for its answer), so a
shared machine's load drift hits both alike. Prints p50/p95/p99/max per mode; nothing asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from bench.stack import ROOT, Stack, Unavailable, free_port, wait_http
from bench.stats import percentile

VCL = ROOT / "deploy" / "varnish" / "default.vcl"


def start_varnish(stack: Stack) -> int:
    binary = shutil.which("varnishd") or "/usr/sbin/varnishd"
    if not os.path.exists(binary):
        raise Unavailable("varnishd not installed")
    vcl = stack.workdir / "edge-ack.vcl"
    vcl.write_text(VCL.read_text())  # its backend (127.0.0.1:8000) is never asked
    port = free_port()
    proc = stack.spawn("varnish", [binary, "-F", "-j", "none", "-n", str(stack.workdir / "varnish"),
                                   "-a", f"127.0.0.1:{port}", "-T", f"127.0.0.1:{free_port()}",
                                   "-f", str(vcl), "-s", "malloc,64m"], core=None)
    wait_http(f"http://127.0.0.1:{port}/health/", timeout=30, proc=proc.popen)  # the VCL's own 404
    return port


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--writes", type=int, default=200, help="writes per mode (200)")
    parser.add_argument("--wait", type=float, default=0.15, help="EDGE_ACK_WAIT of the acknowledged mode")
    opts = parser.parse_args(argv)
    stack = Stack()
    try:
        redis_port = stack.start_redis()
        varnish_port = start_varnish(stack)
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "newsite.settings", "DATABASE_URL": opts.database_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/1",
            "CELERY_TASK_ALWAYS_EAGER": "false", "CACHE_KEY_PREFIX": "bench-edge-ack",
            "VARNISH_PURGE_URL": f"http://127.0.0.1:{varnish_port}/", "DEBUG": "false", "LOG_LEVEL": "WARNING",
        })
        import django

        django.setup()
        from django.conf import settings
        from django.db import transaction

        from caching import invalidate_tags_on_commit
        from cdn.models import PurgeOutbox

        first_row = PurgeOutbox.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        modes = {"drain only (EDGE_ACK_WAIT=0)": 0.0, f"edge acknowledged (EDGE_ACK_WAIT={opts.wait})": opts.wait}
        timings: dict[str, list[float]] = {name: [] for name in modes}
        for n in range(opts.writes * len(modes) + 10):
            name = list(modes)[n % len(modes)]
            settings.CDN_OUTBOX["EDGE_ACK_WAIT"] = modes[name]
            started = time.perf_counter()
            with transaction.atomic():
                invalidate_tags_on_commit([f"bench-edge-ack:{n}"])
            if n >= 10:  # the first writes open connections and load scripts
                timings[name].append((time.perf_counter() - started) * 1000)
        done = PurgeOutbox.objects.filter(pk__gt=first_row, status="done").count()
        print(f"{opts.writes} writes per mode, alternating; rows done by their writer: {done}")
        print(f"{'mode':<40} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, values in timings.items():
            print(f"{name:<40} {percentile(values, 50):>8.2f} {percentile(values, 95):>8.2f} "
                  f"{percentile(values, 99):>8.2f} {max(values):>8.2f}")
        PurgeOutbox.objects.filter(pk__gt=first_row, tags__0__startswith="bench-edge-ack:").delete()
    except Unavailable as exc:
        print(f"n/a: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
