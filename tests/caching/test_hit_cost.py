"""7. A hit runs zero loader calls and at most one Redis command; a cold miss two round trips
(INFO commandstats and MONITOR, on a private redis-server so other clients do not pollute the
counts)."""

import threading

import pytest
from django.conf import settings

import caching
from caching import conf, engine, keys
from tests.caching import names

from .conftest import cache_kinds, cache_settings

IGNORED = {"cmdstat_info", "cmdstat_ping"}  # our own INFO calls; the subscriber's health check
HANDSHAKE = ("INFO", "PING", "HELLO", "CLIENT")


def _commands(client) -> dict:
    return {k: v["calls"] for k, v in client.info("commandstats").items() if k not in IGNORED}


def _delta(before: dict, after: dict) -> dict:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def _no_loader():
    raise AssertionError("a hit must not call the loader")


class Monitor:
    """The commands clients send to a redis-server (MONITOR), without those that scripts run:
    one line per round trip of a non-pipelined client."""

    def __init__(self, server):
        self.client = server.client()
        self.sent: list[str] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self.client.monitor() as monitor:
            self._ready.set()
            for line in monitor.listen():
                command = line["command"]
                if command == "PING stop-monitor":
                    return
                # not: scripts' commands, our INFO, health checks, a new connection's handshake
                if line.get("client_type") != "lua" and not command.startswith(HANDSHAKE):
                    self.sent.append(command)

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc):
        self.client.execute_command("PING", "stop-monitor")
        self._thread.join(5)


@pytest.mark.slow
def test_l2_hit_is_exactly_one_command(use_private_redis):
    """The hit's one command is SET value-key lease NX GET: on a present key it writes nothing
    and answers the value, as GET would (it takes the lease only when the key is absent)."""
    client = use_private_redis.client()
    key = names.article_key(7)
    with cache_settings(L1_ENABLED=False):
        assert caching.fetch(key, lambda: {"title": "t"}, kind="article", tags=["article:7"]).source == "MISS"
        before = _commands(client)
        dirty = client.info("persistence")["rdb_changes_since_last_save"]
        for _ in range(20):
            fetched = caching.fetch(key, _no_loader, kind="article", tags=["article:7"])
            assert (fetched.value, fetched.source) == ({"title": "t"}, caching.HIT_L2)
        assert _delta(before, _commands(client)) == {"cmdstat_set": 20}
        assert client.info("persistence")["rdb_changes_since_last_save"] == dirty  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize("admission", ["always", "second_hit"])
def test_cold_miss_is_two_round_trips(use_private_redis, admission):
    """A cold key: the read that finds it absent takes the lease (SET NX GET), and one fill.lua
    call checks the tags, stores the value, indexes it and releases the lease. Then it hits."""
    article = {**getattr(settings, conf.kinds_name())["article"], "admission": admission}
    with cache_settings(L1_ENABLED=False), cache_kinds(article=article):
        caching.fetch(names.article_key(1), lambda: "warm", kind="article")  # scripts loaded, seq exists
        caching.invalidate_tags(["author:3"])
        for n in (0, 1) if admission == "second_hit" else (0,):  # the doorkeeper admits the 2nd fill
            key = names.article_key(70 + n if admission == "always" else 70)
            engine.redis_client().delete(keys.value_key(engine.default().namespace, key))
            with Monitor(use_private_redis) as monitor:
                fetched = caching.fetch(key, lambda n=n: {"title": f"t{n}"}, kind="article",
                                        tags=["article:70", "author:3", "category:2"])
            assert (fetched.value, fetched.source, fetched.superseded) == ({"title": f"t{n}"}, caching.MISS, False)
            assert [c.split()[0] for c in monitor.sent] == ["SET", "EVALSHA"], monitor.sent
        assert caching.fetch(key, _no_loader, kind="article").source == caching.HIT_L2


@pytest.mark.slow
def test_negative_and_failed_loads_are_two_round_trips(use_private_redis):
    """A cached 404 (first sight: the fill's doorkeeper keeps it out of L2) is one fill call; a
    failing loader releases the lease in one call."""

    def broken():
        raise RuntimeError("boom")

    with cache_settings(L1_ENABLED=False):
        caching.fetch(names.article_key(1), lambda: None, kind="article")  # Redis has the scripts now
        with pytest.raises(RuntimeError):
            caching.fetch(names.article_key(2), broken, kind="article")
        with Monitor(use_private_redis) as monitor:
            assert caching.fetch(names.article_key(404), lambda: None, kind="article").value is None
        assert [c.split()[0] for c in monitor.sent] == ["SET", "EVALSHA"], monitor.sent

        with Monitor(use_private_redis) as monitor, pytest.raises(RuntimeError):
            caching.fetch(names.article_key(500), broken, kind="article")
        assert [c.split()[0] for c in monitor.sent] == ["SET", "EVALSHA"], monitor.sent
        client = use_private_redis.client()
        ns = engine.default().namespace
        assert not client.exists(keys.value_key(ns, names.article_key(404)), keys.value_key(ns, names.article_key(500)))


@pytest.mark.slow
def test_l1_hit_is_zero_redis_commands(use_private_redis):
    client = use_private_redis.client()
    key = names.article_key(8)
    caching.fetch(key, lambda: "v", kind="article")  # starts the subscriber
    assert engine.default().subscriber.wait_subscribed(5)
    caching.fetch(key, lambda: "v", kind="article")  # L1 was cleared on subscribe: refill
    before = _commands(client)
    for _ in range(20):
        fetched = caching.fetch(key, _no_loader, kind="article")
        assert (fetched.value, fetched.source) == ("v", caching.HIT_L1)
    assert _delta(before, _commands(client)) == {}
