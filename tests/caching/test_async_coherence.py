"""Read-your-writes across processes with the sync and async faces mixed: a writer process
changes the source of truth and invalidates its tag 150 times - with invalidate_tags() or
`await ainvalidate_tags()` - while four reader processes (two with fetch() in threads, two with
afetch() and afetch_many() in tasks) read the key in a loop. Once a write has returned, no read
that starts afterwards, in any process, answers an older version (L1 and L2 included: the
invalidation waits for every live L1's acknowledgement, and a message that reached a process but
is not applied holds its L1 hits back). The readers count their L1 hits, so the test shows L1 was
in play.

Processes are spawned (fresh interpreters on the test's settings module and sys.path: a forked
child would inherit asgiref's thread-sensitive executor without its thread, and hang on its first
load); the source of truth is a plain Redis key outside the cache's namespace."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import traceback

import pytest

import caching
from caching import aio, engine, fetcher
from tests.caching import names

VERSIONS = 150
KEY, TAG = names.article_key(8800), names.article_tag(8800)
OTHER = names.article_key(8801)  # read with KEY by afetch_many (tagged with TAG too)
TRUTH, RETURNED, DONE = "async-coherence:truth", "async-coherence:returned", "async-coherence:done"
THREADS, TASKS = 3, 6


def _version(redis, name) -> int:
    return int(redis.get(name) or 0)


def _control():
    """A plain client on the cache's Redis for the test's own keys, with generous timeouts (the
    engine's are a fraction of a second: on a loaded machine they would end a worker)."""
    import redis as redis_py

    kwargs = engine.redis_client().connection_pool.connection_kwargs
    return redis_py.Redis(host=kwargs.get("host", "127.0.0.1"), port=kwargs.get("port", 6379), db=kwargs.get("db", 0),
                          password=kwargs.get("password"), socket_timeout=60)


def _setup() -> None:
    """In a spawned child: Django on the parent's settings module (DJANGO_SETTINGS_MODULE), and
    the app tiers only, as in the test process (conftest's _no_other_tiers: a project's CDN
    outbox hook would write rows to a database these processes do not set up)."""
    import django

    django.setup()
    from caching.invalidation import on_invalidate

    on_invalidate.clear()


def _writer(mode: str, conn) -> None:
    try:
        _setup()
        redis = _control()
        if mode == "sync":
            for version in range(1, VERSIONS + 1):
                redis.set(TRUTH, version)
                caching.invalidate_tags([TAG])
                redis.set(RETURNED, version)  # after the write returned
        else:
            async def write():
                for version in range(1, VERSIONS + 1):
                    redis.set(TRUTH, version)
                    await caching.ainvalidate_tags([TAG])
                    redis.set(RETURNED, version)
                    await asyncio.sleep(0.001)  # let other tasks of a real server run
                await aio.aclose()

            asyncio.run(write())
        redis.set(DONE, 1)
        conn.send({"role": f"write-{mode}"})
    except BaseException:  # noqa: BLE001 - reported to the test
        conn.send({"error": traceback.format_exc()})


def _reader(mode: str, conn) -> None:
    report = {"role": f"read-{mode}", "reads": 0, "stale": [], "l1_hits": 0}
    lock = threading.Lock()
    try:
        _setup()
        redis = _control()
        conn.send({"ready": engine.default().subscriber.wait_subscribed(10)})
        conn.recv()  # go

        def load():
            return _version(redis, TRUTH)

        def check(returned: int, fetched, how: str = "fetch") -> None:
            with lock:
                report["reads"] += 1
                report["l1_hits"] += fetched.source == caching.HIT_L1
                if fetched.value < returned and len(report["stale"]) < 20:
                    report["stale"].append([returned, fetched.value, fetched.source, how])

        if mode == "sync":
            def loop():
                try:
                    while not redis.get(DONE):
                        returned = _version(redis, RETURNED)
                        try:
                            check(returned, caching.fetch(KEY, load, kind="article", tags=[TAG]))
                        except caching.LeaseTimeout:  # the answer "busy" (a loaded machine): no value
                            report["busy"] = report.get("busy", 0) + 1
                except BaseException:  # noqa: BLE001 - reported to the test
                    report.setdefault("error", traceback.format_exc())

            threads = [threading.Thread(target=loop) for _ in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            def bulk_load(keys_to_args):
                value = load()
                return {key: value for key in keys_to_args}

            async def task(n: int):
                while not redis.get(DONE):
                    returned = _version(redis, RETURNED)
                    try:
                        await read_once(n, returned)
                    except caching.LeaseTimeout:
                        report["busy"] = report.get("busy", 0) + 1
                    await asyncio.sleep(0)

            async def read_once(n: int, returned: int):
                if n % 2:
                    check(returned, await caching.afetch(KEY, load, kind="article", tags=[TAG]), "afetch")
                else:
                    many = await caching.afetch_many({KEY: 0, OTHER: 0}, bulk_load, kind="article",
                                                     tags_for=lambda key, value: [TAG])
                    check(returned, many[KEY], "afetch_many")
                    check(returned, many[OTHER], "afetch_many")

            async def read():
                await asyncio.gather(*(task(n) for n in range(TASKS)))
                await aio.aclose()

            asyncio.run(read())
        # The last write returned: every read now sees it, from L1 after the first.
        for _ in range(3):
            check(VERSIONS, caching.fetch(KEY, load, kind="article", tags=[TAG]))
        conn.send(report)
    except BaseException:  # noqa: BLE001 - reported to the test
        conn.send({"error": traceback.format_exc()})


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["async", "sync"])
def test_no_reader_sees_a_version_older_than_the_last_returned_write(writer):
    redis = _control()
    redis.delete(TRUTH, RETURNED, DONE)
    fetcher.clear_local()
    caching.invalidate_tags([TAG])
    ctx = multiprocessing.get_context("spawn")
    procs, conns = [], []
    for target, mode in [(_reader, "sync"), (_reader, "sync"), (_reader, "async"), (_reader, "async")]:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=target, args=(mode, child), daemon=True)
        proc.start()
        procs.append(proc)
        conns.append(parent)
    try:
        for conn in conns:
            assert conn.poll(120), "a reader did not start"
            assert conn.recv() == {"ready": True}, "a reader could not subscribe"
        for conn in conns:
            conn.send("go")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_writer, args=(writer, child), daemon=True)
        proc.start()
        procs.append(proc)
        conns.append(parent)
        reports = []
        for conn in conns:
            assert conn.poll(300), "a worker did not finish"
            reports.append(conn.recv())
    finally:
        redis.set(DONE, 1)
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    errors = [r["error"] for r in reports if "error" in r]
    assert not errors, errors[0]
    for report in reports[:-1]:
        assert report["stale"] == [], f"{report['role']} read older than a write that had returned (returned, read, tier, call)"
        assert report["reads"] > 20, report
    hits = {role: sum(r["l1_hits"] for r in reports if r.get("role") == role) for role in ("read-sync", "read-async")}
    assert all(n > 0 for n in hits.values()), f"L1 never answered a reader: {hits}"
    redis.delete(TRUTH, RETURNED, DONE)
