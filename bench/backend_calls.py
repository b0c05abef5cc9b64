"""Per-call cost of cache.get() hits (and of set()): TieredCache (L1 hit, and L2 hit with L1 off) against
django-redis and Django's built-in RedisCache, same Redis, same values.

    .venv/bin/python -m bench.backend_calls [redis://127.0.0.1:6379/13] [--rounds 5]

Configures Django by itself (no newsite settings). Prints microseconds per call, the median of
`rounds` rounds; writes only keys under "bench-tc" prefixes and removes them at the end.
"""

from __future__ import annotations

import argparse
import copy
import pickle
import statistics
import time

SMALL = "x" * 40
DICT = {"id": 7, "title": "A headline of some length", "tags": ["a", "b", "c"],
        "authors": [{"id": i, "name": f"Author {i}"} for i in range(5)], "body": "lorem " * 60}


def _per_call(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("location", nargs="?", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "tiered": {"BACKEND": "caching.backends.TieredCache", "LOCATION": args.location,
                       "OPTIONS": {"NAMESPACE": "bench-tc"}},
            "tiered_l2": {"BACKEND": "caching.backends.TieredCache", "LOCATION": args.location,
                          "OPTIONS": {"NAMESPACE": "bench-tc-l2", "L1_ENABLED": False}},
            "django_redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": args.location,
                             "KEY_PREFIX": "bench-tc-dr"},
            "django_builtin": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                               "LOCATION": args.location, "KEY_PREFIX": "bench-tc-dj"},
        },
    )
    django.setup()
    from django.core.cache import caches

    # Rounds are interleaved across backends so a burst of load on the machine hits them all.
    cases = []
    for alias, n in (("tiered", 50_000), ("tiered_l2", 2_000), ("django_redis", 2_000), ("django_builtin", 2_000)):
        cache = caches[alias]
        for label, value in (("str40", SMALL), ("dict", DICT)):
            cache.set(f"bench:{label}", value, 600)
            assert cache.get(f"bench:{label}") == value
            cache.get(f"bench:{label}")  # warm (L1 fill, scripts loaded)
            cases.append((alias, f"get {label}", lambda c=cache, k=f"bench:{label}": c.get(k), n))
        cases.append((alias, "set str40", lambda c=cache: c.set("bench:w", SMALL, 600), 1_000))
    timings = {(alias, label): [] for alias, label, _, _ in cases}
    for _ in range(args.rounds):
        for alias, label, fn, n in cases:
            timings[alias, label].append(_per_call(fn, n))
    rows = [(alias, label, statistics.median(t), min(t)) for (alias, label), t in timings.items()]
    for alias in ("tiered", "tiered_l2", "django_redis", "django_builtin"):
        caches[alias].delete_many(["bench:str40", "bench:dict", "bench:w"])
    raw = pickle.dumps(DICT, pickle.HIGHEST_PROTOCOL)
    decode = statistics.median(_per_call(lambda: pickle.loads(raw), 50_000) for _ in range(args.rounds))
    deep = statistics.median(_per_call(lambda: copy.deepcopy(DICT), 20_000) for _ in range(args.rounds))
    print(f"{'backend':<16}{'call':<12}{'median us':>10}{'best us':>9}")
    for alias, label, median, best in rows:
        print(f"{alias:<16}{label:<12}{median:>10.1f}{best:>9.1f}")
    print(f"L1 copy cost for the dict ({len(raw)} B pickled): pickle.loads {decode:.1f} us, "
          f"copy.deepcopy {deep:.1f} us")


if __name__ == "__main__":
    main()
