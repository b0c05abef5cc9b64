"""A test backend: TieredCache whose sync methods run their native async twins, so Django's own
cache suite (written against the sync API) checks aget, aset, ... answer for answer.

Each sync call is asgiref's async_to_sync of the async method, as a sync caller inside an
async application would make it: a loop of its own, and what the coroutine hands to a
thread-sensitive thread (pickling a lazy QuerySet) runs back on the calling thread, on its
database connection. Nothing of the sync half's Redis path runs; L1 is the same one.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync

from caching import aio
from caching.backends.tiered import TieredCache


def _through(name: str):
    async_method = getattr(TieredCache, "a" + name)

    async def call_and_close(*args, **kwargs):
        try:
            return await async_method(*args, **kwargs)
        finally:
            await aio.aclose()  # the loop ends with the call

    def method(self, *args, **kwargs):
        return async_to_sync(call_and_close)(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"{name}() through a{name}()."
    return method


class AsyncDrivenTieredCache(TieredCache):
    """Every operation Django's suite calls goes through the async method of the same name
    (get_or_set, incr_version, decr_version: BaseCache's async versions, on the native ones)."""


ASYNC_TWINS = ("get", "get_many", "has_key", "set", "add", "set_many", "touch", "delete", "delete_many", "incr",
               "decr", "clear", "get_or_set", "incr_version", "decr_version", "close")
for _name in ASYNC_TWINS:
    setattr(AsyncDrivenTieredCache, _name, _through(_name))
