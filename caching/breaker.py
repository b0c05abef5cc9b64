"""A circuit breaker in front of a tier (Redis, or the database for public reads).

The caller decides what is a failure and reports it: caching/l2.py every Redis error except the
caller's own (DataError, LockError, WatchError) - connection loss and timeouts, but also what a
reachable Redis refuses (OOM, READONLY, NOPERM, a script error); a project's database breaker
only a lost or refused connection.

closed -> (`failures` consecutive failures; BREAKER_FAILURES for L2) -> open: calls skip the tier
without touching the network for `reset_after` seconds (BREAKER_RESET for L2) -> half-open:
exactly one caller probes; success closes, failure re-opens. Cost when closed: one attribute
read before and one after the call.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from caching import metrics

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(self, tier: str, *, failures: int, reset_after: float, on_close=None):
        self.tier = tier
        self.on_close = on_close  # called (outside the lock) when an open breaker closes
        self.threshold = max(1, failures)
        self.reset_after = reset_after
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.open_count = 0
        self._lock = threading.Lock()
        self._gauge = metrics.BREAKER_OPEN.labels(tier)
        self._gauge.set(0)

    def allow(self) -> bool:
        """True if the caller may use the tier now (closed, or the one half-open probe)."""
        if self.state == CLOSED:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self.opened_at >= self.reset_after:
                # This caller is the probe; a probe that never reports is retried next period.
                self.state = HALF_OPEN
                self.opened_at = now
                return True
            return False

    def success(self) -> None:
        if self.state == CLOSED and not self.failures:
            return
        with self._lock:
            reopened = self.state != CLOSED
            if reopened:
                logger.warning("event=breaker_closed tier=%s", self.tier)
                self._gauge.set(0)
            self.state = CLOSED
            self.failures = 0
        if reopened and self.on_close is not None:
            self.on_close()

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
                if self.state == CLOSED:
                    logger.error(
                        "event=breaker_open tier=%s reset_after=%.1f error=%s", self.tier, self.reset_after, json.dumps(str(exc))
                    )
                self.state = OPEN
                self.opened_at = time.monotonic()
                self.open_count += 1
                self._gauge.set(1)

    def snapshot(self) -> dict:
        return {"state": self.state, "consecutive_failures": self.failures, "times_opened": self.open_count}
