"""Structured log lines: `event=<name> key=value ...` on the "newsite.ops" logger.

Values with spaces or quotes are JSON-quoted, so a line splits unambiguously on spaces outside
quotes (logfmt). Only events operators search for go here: invalidations, purges, breaker state.
"""

from __future__ import annotations

import json
import logging

logger = logging.getLogger("newsite.ops")


def _value(value) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        value = ",".join(sorted(str(v) for v in value))
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


def format_event(event: str, **fields) -> str:
    """`event=<event> k1=v1 k2=v2` (fields in the given order; lists joined with commas)."""
    parts = [f"event={_value(event)}"]
    parts += [f"{key}={_value(val)}" for key, val in fields.items()]
    return " ".join(parts)


def log_event(event: str, *, level: int = logging.INFO, **fields) -> None:
    logger.log(level, format_event(event, **fields))


def log_invalidation(tagset: frozenset[str]) -> None:
    """caching.invalidation.on_invalidate hook: runs inside the writer's transaction (a rollback
    afterwards means the invalidation did not happen; the line says "requested")."""
    log_event("cache_invalidation_requested", count=len(tagset), tags=tagset)
