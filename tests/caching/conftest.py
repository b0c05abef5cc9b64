"""Fixtures of the cache tests: a private redis-server on a free port, started and stopped by
the test (for the breaker test and for exact command counts)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis
from django.conf import settings
from django.test.utils import override_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, tmp_path):
        self.port = _free_port()
        self.dir = tmp_path
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def private_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server binary not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def cache_settings(**overrides):
    """override_settings for NEWSITE_CACHE keys (caching re-reads its config on the signal)."""
    return override_settings(NEWSITE_CACHE={**settings.NEWSITE_CACHE, **overrides})


@pytest.fixture
def use_private_redis(private_redis):
    """Point CACHES["default"] (and so the whole cache library) at the private server."""
    caches = {"default": {**settings.CACHES["default"], "LOCATION": private_redis.url}}
    with override_settings(CACHES=caches):
        yield private_redis


@pytest.fixture(autouse=True)
def _no_other_tiers():
    """These tests are about the app tiers: the CDN outbox hook (cdn/) is set aside."""
    from caching.invalidation import on_invalidate

    saved = list(on_invalidate)
    on_invalidate.clear()
    yield
    on_invalidate[:] = saved
