"""A separate process using caching.backends.TieredCache, driven over stdin/stdout (JSON lines).

It configures Django by itself (settings.configure: no newsite settings, no database), as
another project would. argv[1]: the CACHES["default"] entry as JSON.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import django
    from django.conf import settings

    settings.configure(CACHES={"default": json.loads(sys.argv[1])}, INSTALLED_APPS=[])
    django.setup()
    from django.core.cache import cache

    from caching import keys

    state = cache.state  # builds the engine and waits for the subscription

    def in_l1(key: str) -> bool:
        vkey = keys.value_key(state.namespace, cache.make_key(key))
        return state.l1.get(vkey) is not None

    print(json.dumps({"ready": state.l1_live()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op, key = cmd["op"], cmd.get("key")
        if op == "get":
            reply = {"value": cache.get(key), "in_l1": in_l1(key)}
        elif op == "in_l1":
            reply = {"in_l1": in_l1(key)}
        elif op == "set":
            cache.set(key, cmd["value"])
            reply = {}
        elif op == "incr_n":
            for _ in range(cmd["n"]):
                value = cache.incr(key)
            reply = {"value": value}
        elif op == "quit":
            break
        else:
            reply = {"error": f"unknown op {op}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
