"""Write-behind read counters and the trending score (SPEC section 6).

A read costs one Redis round trip: HINCRBY on the pending hash and ZINCRBY on the trending
sorted set, pipelined. A Celery beat task (`articles.flush_view_counts`, every few seconds)
moves the pending hash aside atomically, writes every count to PostgreSQL in ONE statement
together with the batch id (ViewCountFlush), and only then drops the moved-aside hash. A crash
at any step is safe: before the commit, the next flush finds the moved-aside hash and applies it;
after the commit, it finds the batch id already recorded and only drops the hash. So no count is
lost or applied twice.

Trending uses forward decay: a read at time t adds 2^((t - base) / half-life), so recent reads
weigh more without rewriting old scores; a new sorted set starts every epoch (a day), so the
weights stay small, and the previous day's set counts with its decay applied.
"""

from __future__ import annotations

import logging
import time
import uuid

import redis
from django.db import connection, transaction
from django.db.models import F

from caching import engine, keys
from caching.l2 import L2Timeout, L2Unavailable

from .models import Article, ViewCountFlush

logger = logging.getLogger("newsite.counters")

HALF_LIFE = 6 * 3600.0
EPOCH_SECONDS = 4 * HALF_LIFE  # a new sorted set every day: weights stay within 1 .. 16
TRENDING_KEEP = 2000
FLUSH_LOCK_SECONDS = 60

def _l2():
    """The cache engine's Redis client and breaker (caching/l2.py)."""
    return engine.default().l2


def _epoch(now: float) -> int:
    return int(now // EPOCH_SECONDS)


def record_view(*, article_id: int) -> None:
    """Count one read: one Redis round trip. Falls back to a direct UPDATE if Redis is down."""
    now = time.time()
    epoch = _epoch(now)
    weight = 2.0 ** ((now - epoch * EPOCH_SECONDS) / HALF_LIFE)  # 1 .. 2^(EPOCH/HALF_LIFE)
    scores = keys.trending_scores_key(epoch)
    l2 = _l2()

    def run():
        pipe = l2.client.pipeline(transaction=False)
        pipe.hincrby(keys.views_pending_key(), str(article_id), 1)
        pipe.zincrby(scores, weight, str(article_id))
        pipe.expire(scores, int(3 * EPOCH_SECONDS))
        pipe.execute()

    try:
        l2.call(run)
    except L2Timeout as exc:
        # The increment may have been applied: counting it again in PostgreSQL could count twice.
        logger.warning("views: redis timed out (%s); this read is not counted", exc)
    except (L2Unavailable, redis.RedisError) as exc:  # not applied (refused, breaker open, READONLY, OOM): SQL
        logger.warning("views: redis unavailable (%s); counting in PostgreSQL directly", exc)
        Article.objects.filter(pk=article_id).update(view_count=F("view_count") + 1)


def move_aside() -> str | None:
    """Step 1 of a flush: the batch to apply (a fresh one, or the one a crashed flush left)."""
    batch = _l2().script(
        "move_aside", [keys.views_pending_key(), keys.views_processing_key(), keys.views_batch_id_key()],
        [uuid.uuid4().hex],
    )
    return batch.decode() if isinstance(batch, bytes) else batch


def apply_batch(batch_id: str) -> int:
    """Step 2: write the moved-aside counts to PostgreSQL once. Returns the reads applied."""
    l2 = _l2()
    pipe = l2.client.pipeline(transaction=True)
    pipe.get(keys.views_batch_id_key())
    pipe.hgetall(keys.views_processing_key())
    current, raw = l2.call(pipe.execute)
    if current is None or current.decode() != batch_id:
        return 0  # another flush applied and dropped this batch meanwhile
    counts = {int(k): int(v) for k, v in raw.items() if int(v) > 0}
    with transaction.atomic():
        _, created = ViewCountFlush.objects.get_or_create(batch_id=batch_id, defaults={"reads": sum(counts.values())})
        if not created or not counts:
            return 0
        _bulk_increment(counts)
    return sum(counts.values())


def _bulk_increment(counts: dict[int, int]) -> None:
    table = Article._meta.db_table
    ids, values = list(counts), [counts[i] for i in counts]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS a SET view_count = a.view_count + v.n "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, n) WHERE a.id = v.id",
                [ids, values],
            )
        else:  # SQLite (make run): one statement with a CASE
            cases = " ".join(f"WHEN {int(i)} THEN {int(n)}" for i, n in counts.items())
            placeholders = ",".join("%s" for _ in ids)
            cursor.execute(
                f"UPDATE {table} SET view_count = view_count + CASE id {cases} ELSE 0 END WHERE id IN ({placeholders})",
                ids,
            )


def drop_batch(batch_id: str) -> None:
    """Step 3: forget the moved-aside hash (PostgreSQL has it), unless it is another batch."""
    _l2().script("drop_if_current", [keys.views_processing_key(), keys.views_batch_id_key()], [batch_id])


def flush_view_counts() -> int:
    """Move aside, apply, drop, under a Redis lock (beat, retries and acks_late can overlap
    flushes). Returns how many reads were written to PostgreSQL (0 if another flush runs)."""
    l2 = _l2()
    lock = l2.client.lock(keys.views_flush_lock_key(), timeout=FLUSH_LOCK_SECONDS, blocking=False)
    if not l2.call(lock.acquire):
        return 0
    try:
        batch_id = move_aside()
        if batch_id is None:
            return 0
        applied = apply_batch(batch_id)
        drop_batch(batch_id)
    finally:
        try:
            l2.call(lock.release)
        except redis.exceptions.LockError:
            logger.warning("views: the flush outlived its %d s lock", FLUSH_LOCK_SECONDS)
    maintain_trending()
    ViewCountFlush.objects.filter(created_at__lt=_days_ago(2)).delete()
    return applied


def _days_ago(days: int):
    from django.utils import timezone

    return timezone.now() - timezone.timedelta(days=days)


def maintain_trending() -> None:
    """Keep the current sorted set bounded (the previous one only shrinks in weight)."""
    l2 = _l2()
    l2.call(l2.client.zremrangebyrank, keys.trending_scores_key(_epoch(time.time())), 0, -(TRENDING_KEEP + 1))


def trending_ids(*, limit: int) -> list[int]:
    """Article ids by decayed read score, best first ([] when Redis has none or is down).

    Scores live in one sorted set per epoch, each relative to its epoch's start; the previous
    epoch's scores count with the decay they accumulated since (ZUNION ... WEIGHTS)."""
    epoch = _epoch(time.time())
    previous_weight = 2.0 ** (-EPOCH_SECONDS / HALF_LIFE)
    try:
        l2 = _l2()
        rows = l2.call(
            l2.client.zunion,
            {keys.trending_scores_key(epoch): 1.0, keys.trending_scores_key(epoch - 1): previous_weight},
            withscores=True,
        )
    except (L2Unavailable, redis.RedisError):
        return []
    rows.sort(key=lambda row: row[1], reverse=True)
    return [int(member) for member, _ in rows[: limit * 3]]
