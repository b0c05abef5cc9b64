"""`python -m bench.l1_memory`: what an L1 entry costs beyond its body (issue 29).

Fills a bare caching.l1.L1 with N response entries shaped as the article detail's (a 2,870-byte
body, the header store of caching.http, five tags of which two shared by every entry), then
reports per entry: bytes allocated (tracemalloc) beyond the body, the objects the garbage
collector tracks, and the time of a full collection (gc.collect(), median of 5) with that L1
in the process - the pause every thread of a worker waits through. Prints one Markdown table;
`--out FILE` also writes it. No Django request, no Redis: the tier alone, in this process.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc

BODY_BYTES = 2870  # the Zipf workload's mean response (bench/results/2026-12-02-throughput.md)


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")
    import django

    django.setup()


def _entries(n: int):
    from caching import l1 as l1_module
    from caching.http import _static_headers, response_entry, strong_etag

    shared = ("feed:home", "articles")
    for i in range(n):
        body = (b"%07d" % i) + b"x" * (BODY_BYTES - 7)
        tags = (f"article:{i}", f"article-counts:{i}", f"author:{i % 200}", *shared)
        etag = strong_etag(body)
        value = response_entry(status=200, body=body, content_type="application/json", etag=etag,
                               last_modified=1_765_000_000 + i, cache_control="public, max-age=30, s-maxage=300",
                               tags=tags, header_store=_static_headers(cache_control="public, max-age=30, s-maxage=300",
                                                                       etag=etag, last_modified=1_765_000_000 + i, tags=tags))
        key = f"newsite:v6:resp.api-article:article_id={i}"
        yield key, l1_module.entry(value, time.time(), tags, len(body), time.monotonic() + 3600, "resp.api-article")


def measure(n: int) -> dict:
    _setup()
    from caching.l1 import L1

    l1 = L1(max_bytes=1 << 40, max_entries=n, max_item_bytes=1 << 20, tag_seq_ttl=60)
    # What newsite/wsgi.py does after the import and after a worker's first requests (which make
    # the engine and its L1): what exists then is never scanned again, the L1's containers
    # included; what the L1 holds later is.
    gc.collect()
    gc.freeze()
    body_total = 0
    tracked_before = len(gc.get_objects())
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for key, new in _entries(n):
        body_total += len(new[0][1])
        l1.put(key, new, l1.since())
    gc.collect()
    allocated = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    tracked = len(gc.get_objects()) - tracked_before
    first = time.perf_counter()
    gc.collect()  # entries not untracked yet (one level of nesting per collection) go now
    first = (time.perf_counter() - first) * 1000
    pauses = []
    for _ in range(5):
        t0 = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - t0) * 1000)
    assert len(l1) == n
    return {"entries": n, "allocated": allocated, "body": body_total, "tracked": tracked,
            "gc_ms": statistics.median(pauses), "first_gc_ms": first, "rss_kib": _rss_kib()}


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--out", default=None)
    opts = parser.parse_args(argv)
    r = measure(opts.entries)
    per = (r["allocated"] - r["body"]) / r["entries"]
    lines = [
        "| L1 entries | bytes allocated | of which bodies | overhead per entry (beyond the body) | "
        "GC-tracked objects per entry | full collection ms: first after the fill, then (median of 5) | "
        "process RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['entries']:,} | {r['allocated']:,} | {r['body']:,} | {per:,.0f} B | {r['tracked'] / r['entries']:.2f} | "
        f"{r['first_gc_ms']:.2f}, then {r['gc_ms']:.2f} | {r['rss_kib'] / 1024:.0f} |",
    ]
    print("\n".join(lines))
    if opts.out:
        with open(opts.out, "w") as out:
            out.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
