"""Tiny reachability probes used by the Makefile scripts: `python -m newsite.probe redis URL`.

Exit 0 when the service answers within a second, 1 otherwise. Imports no Django.
"""

import socket
import sys
from urllib.parse import urlsplit


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def tcp_answers(url: str) -> bool:
    parts = urlsplit(url)
    default_port = {"redis": 6379, "rediss": 6380, "amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    kind, url = argv[1], argv[2]
    if kind == "redis" or (kind == "broker" and url.startswith("redis")):
        return 0 if redis_answers(url) else 1
    return 0 if tcp_answers(url) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
