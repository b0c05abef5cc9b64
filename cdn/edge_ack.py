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

Cost for a write with one Varnish: one PURGE per node (in parallel, ~1 ms each on a LAN), and 4
statements (BEGIN, SELECT ... FOR UPDATE SKIP LOCKED, UPDATE, COMMIT with synchronous_commit
off) instead of the drain task's broker round trip; the row lock is held while waiting.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures

from django.db import DatabaseError, transaction
from django.utils import timezone

from caching.invalidation import app_tiers_behind
from caching.metrics import INVALIDATION_LAG
from cdn.backends import PurgeError, get_backends
from cdn.metrics import EDGE_ACKS
from cdn.models import PurgeOutbox
from cdn.outbox import outbox_setting, relax_commit_durability

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


def purge_before_returning(row_id: int) -> bool:
    """Purge outbox row `row_id` at every acknowledging node now, waiting EDGE_ACK_WAIT at most.
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
        return _purge_row(row_id, acknowledging, wait)
    except DatabaseError as exc:  # the write committed: its row goes to the drain (and the re-drive)
        logger.warning("event=cdn_edge_ack_fallback row=%d reason=database error=%s", row_id, json.dumps(str(exc)))
        _count(acknowledging, "error")
        return False


def _purge_row(row_id: int, acknowledging: dict[str, list[str]], wait: float) -> bool:
    """Lock the row (SKIP LOCKED: a drain holding it delivers it), purge, record who confirmed."""
    with transaction.atomic():
        relax_commit_durability()
        row = (PurgeOutbox.objects.select_for_update(skip_locked=True)
               .filter(pk=row_id, status=PurgeOutbox.Status.PENDING).first())
        if row is None:  # a drain holds it (it delivers), or it is already done
            _count(acknowledging, "row_busy")
            return False
        todo = {alias: nodes for alias, nodes in acknowledging.items() if alias not in row.delivered_to}
        confirmed = _purge_nodes(todo, row.tags, row.urls, wait)
        if not confirmed:
            return False
        now = timezone.now()
        row.delivered_to = sorted({*row.delivered_to, *confirmed})
        fields = ["delivered_to"]
        if set(get_backends()) <= set(row.delivered_to):
            row.status, row.delivered_at, row.attempts = PurgeOutbox.Status.DONE, now, row.attempts + 1
            fields += ["status", "delivered_at", "attempts"]
        row.save(update_fields=fields)
    INVALIDATION_LAG.labels("cdn").observe(max(0.0, (now - row.created_at).total_seconds()))
    return row.status == PurgeOutbox.Status.DONE


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
