"""Per-call cost of the hot paths: `python -m bench.calls` (needs Redis at REDIS_URL).

Prints microseconds per call for an L1 hit, an L2 hit (L1 disabled) and the raw redis-py GET it
wraps, plus Redis commands per L2 hit (from INFO commandstats; exact only on an idle server).
A measurement, not a test: run it on a quiet machine.
"""

import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")


def _per_call_us(fn, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def _commands(client) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",))


def main() -> None:
    import django

    django.setup()
    from django.test.utils import override_settings

    from caching import engine, fetch, fetcher, keys

    value = {"id": 1, "title": "A headline", "body": "x" * 2000, "tags": list(range(20))}
    key = "article:987654321"

    def loader():
        return value

    fetch(key, loader, kind="article", tags=["article:987654321"])
    fetch(key, loader, kind="article")
    l1 = _per_call_us(lambda: fetch(key, loader, kind="article"), 200_000)

    settings_l2_only = override_settings(NEWSITE_CACHE={**django.conf.settings.NEWSITE_CACHE, "L1_ENABLED": False})
    with settings_l2_only:
        fetch(key, loader, kind="article")
        l2 = _per_call_us(lambda: fetch(key, loader, kind="article"), 5_000)
        client = engine.redis_client()
        vkey = keys.value_key(fetcher.current().namespace, key)
        raw = _per_call_us(lambda: client.get(vkey), 5_000)
        before = _commands(client)
        for _ in range(1000):
            fetch(key, loader, kind="article")
        per_hit = (_commands(client) - before) / 1000
    engine.reset()
    print(f"L1 hit: {l1:.2f} us/call")
    print(f"L2 hit: {l2:.1f} us/call (raw redis-py GET of the same envelope: {raw:.1f} us)")
    print(f"Redis commands per L2 hit: {per_hit:.3f}")


if __name__ == "__main__":
    main()
