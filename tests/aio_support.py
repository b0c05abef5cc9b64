"""Helpers of the async tests (no pytest-asyncio: each test runs its own loop)."""

from __future__ import annotations

import asyncio

import pytest

from caching import aio


def arun(coro):
    """asyncio.run(coro), closing the loop's async Redis clients before the loop ends."""
    async def main():
        try:
            return await coro
        finally:
            await aio.aclose()

    return asyncio.run(main())


def completes_without_suspending(coro):
    """The coroutine's result if it finished on its first step: it awaited nothing (no I/O, no
    thread hop). Fails the test otherwise."""
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    return stop.value.value


def hit_without_suspending(make, tries: int = 20):
    """The result of the coroutine `make()` returns, from a try on which it finished on its first
    step (awaited nothing: no I/O, no thread hop), run on an event loop. An L1 lookup does await
    while a broadcast message has reached the process but is not applied yet (a PING's answer, the
    echo of our own write: caching/l1.py L1.aget), rather than block the loop: a try that
    suspends is dropped and made again a moment later. Fails the test when every try suspends."""
    async def attempts():
        for _ in range(tries):
            coro = make()
            try:
                coro.send(None)
            except StopIteration as stop:
                return stop.value
            coro.close()
            await asyncio.sleep(0.005)
        pytest.fail(f"suspended on each of {tries} tries")

    return arun(attempts())
