"""A separate process using the Django cache API on caching.backends.TieredCache, driven over
stdin/stdout (JSON lines): {"op": "get"|"set", "key": ..., "value": ...}. Only the public cache
API is used. argv[1]: the CACHES["default"] entry as JSON."""

from __future__ import annotations

import json
import sys


def main() -> None:
    import django
    from django.conf import settings

    settings.configure(CACHES={"default": json.loads(sys.argv[1])}, INSTALLED_APPS=[])
    django.setup()
    from django.core.cache import cache

    cache.get("freshness-warmup")  # builds the tiers (and subscribes) before saying ready
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "get":
            reply = {"value": cache.get(cmd["key"])}
        elif cmd["op"] == "set":
            cache.set(cmd["key"], cmd["value"], timeout=cmd.get("timeout", 600))
            reply = {}
        else:
            reply = {"error": f"unknown op {cmd['op']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
