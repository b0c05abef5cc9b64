"""The fetch face's value format in L2: an envelope around (value, tags).

Wire format: b"<soft ms>|<filled ms>|<cost us>|<seq>|" + pickle((value, tags)). The header is
readable by Lua (acquire.lua compares the fill time) without unpickling. `seq` is the namespace's
invalidation sequence when the load started: an L1 never accepts the value if it knows of a
later invalidation of one of its tags (caching/l1.py, FillGuard).
"""

from __future__ import annotations

import pickle


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


def encode(value, tags: tuple, soft_expiry: float, filled_at: float, cost: float, seq: int) -> bytes:
    header = b"%d|%d|%d|%d|" % (int(soft_expiry * 1000), int(filled_at * 1000), int(cost * 1_000_000), seq)
    return header + pickle.dumps((value, tags), protocol=pickle.HIGHEST_PROTOCOL)
