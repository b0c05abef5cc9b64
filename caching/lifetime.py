"""Values that change with time: a loader says when its value stops being true, the tiers cap it.

A value read from a source can change without any write: a scheduled item goes live, a window
("the last 6 hours") moves on. The code that builds such a value calls `valid_until(moment)` for
every moment at which it would build something else; the fetch face runs each loader inside
`measure()` and caps what it stores at the earliest moment named: the L2 entry's soft and hard
expiry, every L1 copy, and (caching.http) the response's max-age / s-maxage /
stale-while-revalidate / stale-if-error. Nothing is kept past that moment in any tier, and the
next read after it loads again.

Calls outside a measured loader are ignored (with the cache off, fetch still measures, so the
headers are capped). Cost: a contextvar
set and reset per load; nothing on a hit.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime


class Lifetime:
    """The earliest moment (epoch seconds) named during one load, or None: no limit."""

    __slots__ = ("until",)

    def __init__(self):
        self.until: float | None = None

    def cap(self, moment: float) -> None:
        if self.until is None or moment < self.until:
            self.until = moment


_current: ContextVar[Lifetime | None] = ContextVar("caching_lifetime", default=None)


def valid_until(moment: datetime | float | None) -> None:
    """Say that the value being loaded is true only until `moment` (an aware datetime or epoch
    seconds; None: no limit). Several calls keep the earliest."""
    lifetime = _current.get()
    if lifetime is None or moment is None:
        return
    lifetime.cap(moment.timestamp() if isinstance(moment, datetime) else float(moment))


def current_until() -> float | None:
    """The cap named so far by the load in progress (None: none, or no load measured)."""
    lifetime = _current.get()
    return lifetime.until if lifetime is not None else None


@contextmanager
def measure():
    """Run a loader inside this to collect its `valid_until` calls: yields the Lifetime. A load
    nested in another (a loader that fetches another key) caps the outer one too: the outer
    value is built from the inner."""
    outer = _current.get()
    lifetime = Lifetime()
    token = _current.set(lifetime)
    try:
        yield lifetime
    finally:
        _current.reset(token)
        if outer is not None and lifetime.until is not None:
            outer.cap(lifetime.until)
