"""The fetch face's value format in L2: an envelope around (value, tags).

Wire format: b"<soft ms>|<filled ms>|<cost us>|<seq>|" + pickle((value, tags)). The header is
readable by Lua (acquire.lua compares the fill time) without unpickling. `seq` is the namespace's
invalidation sequence up to which no tag of the value was invalidated after its load began,
written by fill.lua between the head and the body the caller sends: an L1 never accepts the
value if it knows of a later invalidation of one of its tags (caching/l1.py, FillGuard).

A value key may instead hold a load lease: b"~" + token (the fetch face's read of an absent key
takes it in the same command, caching/fetcher.py). `is_lease()` tells them apart.
"""

from __future__ import annotations

import pickle

LEASE_MARK = "~"
_LEASE_BYTE = ord(LEASE_MARK)


def is_lease(raw: bytes) -> bool:
    """Whether a value key's content is a load lease (another process is loading it), not a value."""
    return raw[0] == _LEASE_BYTE


class Envelope:
    """A decoded L2 value."""

    __slots__ = ("value", "tags", "soft_expiry", "filled_at", "cost", "seq", "filled_raw", "nbytes")

    def __init__(self, raw: bytes):
        soft, filled, cost, seq, body = raw.split(b"|", 4)
        self.seq = int(seq)
        self.value, self.tags = pickle.loads(body)
        self.soft_expiry = int(soft) / 1000.0
        self.filled_at = int(filled) / 1000.0
        self.cost = int(cost) / 1_000_000.0
        self.filled_raw = filled
        self.nbytes = len(raw)


def head(soft_expiry: float, filled_at: float, cost: float) -> bytes:
    """The envelope up to its sequence: b"<soft ms>|<filled ms>|<cost us>|"."""
    return b"%d|%d|%d|" % (int(soft_expiry * 1000), int(filled_at * 1000), int(cost * 1_000_000))


def body(value, tags: tuple) -> bytes:
    return pickle.dumps((value, tags), protocol=pickle.HIGHEST_PROTOCOL)


def encode(value, tags: tuple, soft_expiry: float, filled_at: float, cost: float, seq: int) -> bytes:
    """A whole envelope (what fill.lua stores)."""
    return head(soft_expiry, filled_at, cost) + b"%d|" % seq + body(value, tags)
