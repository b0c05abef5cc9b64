"""Read-your-writes at the edge: a write returns once the local edges have acknowledged its purge.

After the writer's transaction committed and its app-tier invalidation (L2 + every L1) applied,
`purge_before_returning(row_id)` sends the outbox row's purge to every node of every backend that
acknowledges writes (Varnish: each LOCATION; backends/base.py `acknowledging_nodes`), all in
parallel, and waits for them EDGE_ACK_WAIT seconds at most in all (CDN_OUTBOX, default 0.15).
A backend whose every node confirmed is recorded in the row's `delivered_to`, as a drain would;
when that makes every configured backend, the row is done and no drain is sent. Everything else -
a node down, slow or refusing, a remote CDN configured beside (Fastly and Cloudflare purge
asynchronously: they are never waited for), the row held by a drain - leaves the row to the
outbox's drain exactly as before (the one durable path: at least once, with retries), and is
counted in newsite_cdn_edge_acks_total{backend,result}.

Never before the app tiers: if this process's invalidations are queued for Redis (it could not
reach it), no edge is purged here - the drain re-applies them first (cdn/outbox.py).

Cost for a write with one Varnish: one PURGE per node (in parallel, ~1 ms each on a LAN) and one
UPDATE of the row (skipping it if a drain holds it), plus a SELECT of it when the transaction
widened its row (then only the database knows which widenings survived their savepoints),
instead of the drain task's broker message; no lock or transaction is held while waiting.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone

from caching.invalidation import app_tiers_behind
from caching.metrics import INVALIDATION_LAG
from cdn.backends import PurgeError, get_backends
from cdn.metrics import EDGE_ACKS
from cdn.models import PurgeOutbox
from cdn.outbox import outbox_setting

logger = logging.getLogger("cdn")

MAX_THREADS = 32  # concurrent node purges per process (writers x nodes)

_lock = threading.Lock()
_pool: dict = {"pid": None, "executor": None}


def _executor() -> ThreadPoolExecutor:
    """This process's pool (built on first use, again after a fork: threads do not survive one)."""
    pid = os.getpid()
    if _pool["pid"] != pid:
        with _lock:
            if _pool["pid"] != pid:
                _pool["executor"] = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="edge-ack")
                _pool["pid"] = pid
    return _pool["executor"]


def acknowledging_backends() -> dict[str, list[str]]:
    """{alias: its nodes} of the configured backends a write waits for."""
    nodes = {alias: backend.acknowledging_nodes() for alias, backend in get_backends().items()}
    return {alias: found for alias, found in nodes.items() if found}


@dataclass(frozen=True)
class RowContent:
    """What a committed outbox row holds, when its writer knows it exactly (saves reading it)."""

    tags: list[str]
    urls: list[str]
    created_at: datetime


def purge_before_returning(row_id: int, content: RowContent | None = None) -> bool:
    """Purge outbox row `row_id` at every acknowledging node now, waiting EDGE_ACK_WAIT at most.
    `content`: the row's tags and URLs when the caller knows them exactly (else they are read).
    Returns True when the row is done (every configured backend confirmed: no drain is needed),
    False when the caller must send it to the drain."""
    wait = float(outbox_setting("EDGE_ACK_WAIT"))
    acknowledging = acknowledging_backends() if wait > 0 else {}
    if not acknowledging:
        return False
    if app_tiers_behind():
        _count(acknowledging, "app_tiers_behind")
        return False
    try:
        return _purge_row(row_id, content, acknowledging, wait)
    except DatabaseError as exc:  # the write committed: its row goes to the drain (and the re-drive)
        logger.warning("event=cdn_edge_ack_fallback row=%d reason=database error=%s", row_id, json.dumps(str(exc)))
        _count(acknowledging, "error")
        return False


def _purge_row(row_id: int, content: RowContent | None, acknowledging: dict[str, list[str]], wait: float) -> bool:
    """Read the row unless `content` is given (one SELECT), purge, record who confirmed (one
    UPDATE). No transaction is held open across the purge: a drain that takes the row meanwhile
    delivers it again (idempotent), and the UPDATE skips a row a drain holds or has finished."""
    if content is None:
        row = (PurgeOutbox.objects.filter(pk=row_id, status=PurgeOutbox.Status.PENDING)
               .values("tags", "urls", "created_at").first())
        if row is None:  # already delivered by a drain
            _count(acknowledging, "row_busy")
            return False
        content = RowContent(row["tags"], row["urls"], row["created_at"])
    # A row written by this transaction is delivered nowhere yet (a drain that delivered part of
    # it meanwhile loses that mark below and sends it again: more, never less).
    confirmed = _purge_nodes(acknowledging, content.tags, content.urls, wait)
    if not confirmed:
        return False
    done = set(get_backends()) <= set(confirmed)
    now = timezone.now()
    if not _record(row_id, sorted(confirmed), done, now):
        _count(acknowledging, "row_busy")
        return False
    INVALIDATION_LAG.labels("cdn").observe(max(0.0, (now - content.created_at).total_seconds()))
    return done


def _record(row_id: int, delivered: list[str], done: bool, now) -> bool:
    """Set the row's delivered_to (and done, when it is every backend) if it is still pending and
    no drain holds it. True if recorded. One statement in autocommit on PostgreSQL (the lock's
    SKIP LOCKED in a subquery: the writer never waits for a drain)."""
    status = PurgeOutbox.Status.DONE if done else PurgeOutbox.Status.PENDING
    if not connection.features.has_select_for_update_skip_locked:
        return bool(PurgeOutbox.objects.filter(pk=row_id, status=PurgeOutbox.Status.PENDING).update(
            delivered_to=delivered, status=status, delivered_at=now if done else None,
            attempts=F("attempts") + int(done)))
    table = connection.ops.quote_name(PurgeOutbox._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET delivered_to = %s::jsonb, status = %s, delivered_at = %s, attempts = attempts + %s "
            f"WHERE id = (SELECT id FROM {table} WHERE id = %s AND status = %s FOR UPDATE SKIP LOCKED)",
            [json.dumps(delivered), status, now if done else None, int(done), row_id, PurgeOutbox.Status.PENDING],
        )
        return cursor.rowcount == 1


def _purge_nodes(todo: dict[str, list[str]], tags, urls, wait: float) -> list[str]:
    """Send the purge to every node of `todo` at once; return the aliases whose every node
    confirmed within `wait` seconds (each request is bounded by `wait` too, so a node that does
    not answer ties a pool thread no longer than that)."""
    backends = get_backends()
    deadline = time.monotonic() + wait
    executor = _executor()
    futures = {
        executor.submit(backends[alias].purge_node, node, tags, urls, timeout=wait): (alias, node)
        for alias, nodes in todo.items() for node in nodes
    }
    wait_for_futures(futures, timeout=max(0.0, deadline - time.monotonic()))
    failed: dict[str, str] = {}
    for future, (alias, node) in futures.items():
        if not future.done():
            failed.setdefault(alias, "timeout")
            logger.warning("event=cdn_edge_ack_fallback backend=%s node=%s reason=timeout wait_ms=%.0f",
                           alias, node, wait * 1000)
        elif (exc := future.exception()) is not None:
            failed[alias] = "error"
            if isinstance(exc, PurgeError):
                logger.warning("event=cdn_edge_ack_fallback backend=%s node=%s reason=error error=%s",
                               alias, node, json.dumps(str(exc)))
            else:  # a defect, not the node: still only the fallback to the durable path for the write
                logger.error("event=cdn_edge_ack_fallback backend=%s node=%s reason=defect", alias, node,
                             exc_info=exc)
    for alias in todo:
        EDGE_ACKS.labels(backend=alias, result=failed.get(alias, "acked")).inc()
    return [alias for alias in todo if alias not in failed]


def _count(acknowledging: dict, result: str) -> None:
    for alias in acknowledging:
        EDGE_ACKS.labels(backend=alias, result=result).inc()
