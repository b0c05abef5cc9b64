"""The fetch face's value format in L2: an envelope around (value, tags).

Wire format: b"<soft ms>|<filled ms>|<cost us>|" + pickle((value, tags)). The header is readable
by Lua (acquire.lua compares the fill time) without unpickling.
"""

from __future__ import annotations

import pickle


class Envelope:
    """A decoded L2 value."""

    __slots__ = ("value", "tags", "soft_expiry", "filled_at", "cost", "filled_raw", "nbytes")

    def __init__(self, raw: bytes):
        soft, filled, cost, body = raw.split(b"|", 3)
        self.value, self.tags = pickle.loads(body)
        self.soft_expiry = int(soft) / 1000.0
        self.filled_at = int(filled) / 1000.0
        self.cost = int(cost) / 1_000_000.0
        self.filled_raw = filled
        self.nbytes = len(raw)


def encode(value, tags: tuple, soft_expiry: float, filled_at: float, cost: float) -> bytes:
    header = b"%d|%d|%d|" % (int(soft_expiry * 1000), int(filled_at * 1000), int(cost * 1_000_000))
    return header + pickle.dumps((value, tags), protocol=pickle.HIGHEST_PROTOCOL)
