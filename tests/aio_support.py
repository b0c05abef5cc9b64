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
