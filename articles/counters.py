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

One client, one view (issue 28): a client's read of an article counts once per
VIEW_DEDUPE_SECONDS (count_view.lua sets a per-(article, client) key with SET NX EX in the same
script as the increments; the POST is also charged to the client's "views" budget,
newsite/throttle.py). While Redis is unavailable, reads are counted in the process (deduped in
a bounded TTL cache) and written in one statement at most every LOCAL_FLUSH_SECONDS (LocalViews):
an outage costs PostgreSQL at most one UPDATE per process and second, whatever the POST rate
(before: one UPDATE of the same row per POST). A process killed before its write loses them.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import redis
from cachetools import TTLCache
from django.conf import settings
from django.db import Error as DjangoDatabaseError
from django.db import connection, transaction

from caching import L2Timeout, L2Unavailable
from caching.app_data import Lock, Script, command, pipeline

from . import keys
from .models import Article, ViewCountFlush

logger = logging.getLogger("newsite.counters")

HALF_LIFE = 6 * 3600.0
EPOCH_SECONDS = 4 * HALF_LIFE  # a new sorted set every day: weights stay within 1 .. 16
TRENDING_KEEP = 2000
FLUSH_LOCK_SECONDS = 60
LOCAL_FLUSH_SECONDS = 1.0  # Redis unavailable: one UPDATE per process at most this often
LOCAL_SEEN_MAX = 100_000  # (article, client) pairs a process remembers while Redis is unavailable

# The write-behind's scripts (articles/lua/), run on the cache's Redis through its breaker.
_LUA = Path(__file__).resolve().parent / "lua"
COUNT_VIEW = Script.from_file(_LUA / "count_view.lua")
MOVE_ASIDE = Script.from_file(_LUA / "move_aside.lua")
DROP_IF_CURRENT = Script.from_file(_LUA / "drop_if_current.lua")


def _epoch(now: float) -> int:
    return int(now // EPOCH_SECONDS)


def dedupe_seconds() -> int:
    return int(getattr(settings, "VIEW_DEDUPE_SECONDS", 600))


def record_view(*, article_id: int, client: str = "") -> bool:
    """Count one read unless `client` had its read of the article counted within
    VIEW_DEDUPE_SECONDS: one Redis round trip. Returns whether it counted. Redis unavailable:
    counted in this process (LocalViews)."""
    now = time.time()
    epoch = _epoch(now)
    weight = 2.0 ** ((now - epoch * EPOCH_SECONDS) / HALF_LIFE)  # 1 .. 2^(EPOCH/HALF_LIFE)
    window = dedupe_seconds() if client else 0
    try:
        counted = COUNT_VIEW(
            [keys.views_seen_key(article_id, client), keys.views_pending_key(), keys.trending_scores_key(epoch)],
            [article_id, weight, window, int(3 * EPOCH_SECONDS)],
        )
    except L2Timeout as exc:
        # The increment may have been applied: counting it again in PostgreSQL could count twice.
        logger.warning("views: redis timed out (%s); this read is not counted", exc)
        return False
    except (L2Unavailable, redis.RedisError) as exc:  # not applied (refused, breaker open, READONLY, OOM)
        logger.debug("views: redis unavailable (%s); counted in the process", exc)
        return local_views.add(article_id, client, window)
    if local_views.pending:
        local_views.flush()  # Redis is back: what the outage left in this process goes now
    return bool(counted)


class LocalViews:
    """Reads counted in this process while Redis is unavailable, written to PostgreSQL in one
    statement at most every LOCAL_FLUSH_SECONDS: by the request that finds it due, or by a timer
    started with the first pending read (so an idle process writes them too), and at exit. A
    write the database refuses keeps the counts for the next. Dedupe is this process's meanwhile
    (a client may count once per worker during an outage)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: Counter = Counter()
        self.seen: TTLCache | None = None
        self.flushed_at = time.monotonic()
        self.timer: threading.Timer | None = None

    def add(self, article_id: int, client: str, window: int) -> bool:
        with self.lock:
            if window > 0:
                if self.seen is None or self.seen.ttl != window:
                    self.seen = TTLCache(maxsize=LOCAL_SEEN_MAX, ttl=window)
                if (article_id, client) in self.seen:
                    return False
                self.seen[(article_id, client)] = True
            self.pending[article_id] += 1
            due = time.monotonic() - self.flushed_at >= LOCAL_FLUSH_SECONDS
            if not due and self.timer is None:
                self.timer = threading.Timer(LOCAL_FLUSH_SECONDS, self._flush_from_timer)
                self.timer.daemon = True
                self.timer.start()
        if due:
            self.flush()
        return True

    def _flush_from_timer(self) -> None:
        with self.lock:
            self.timer = None
        try:
            self.flush()
        finally:
            connection.close()  # this thread's own connection

    def flush(self) -> int:
        """Write what is pending in one statement; returns the reads written (0 if none, or if
        the database refused: then they stay pending for the next flush)."""
        with self.lock:
            counts, self.pending = dict(self.pending), Counter()
            self.flushed_at = time.monotonic()
        if not counts:
            return 0
        try:
            _bulk_increment(counts)
        except DjangoDatabaseError as exc:
            with self.lock:
                self.pending.update(counts)
            logger.warning("views: %d reads counted during a Redis outage not written yet: %s", sum(counts.values()), exc)
            return 0
        return sum(counts.values())


local_views = LocalViews()
atexit.register(local_views.flush)


def move_aside() -> str | None:
    """Step 1 of a flush: the batch to apply (a fresh one, or the one a crashed flush left)."""
    batch = MOVE_ASIDE(
        [keys.views_pending_key(), keys.views_processing_key(), keys.views_batch_id_key()], [uuid.uuid4().hex],
    )
    return batch.decode() if isinstance(batch, bytes) else batch


def apply_batch(batch_id: str) -> int:
    """Step 2: write the moved-aside counts to PostgreSQL once. Returns the reads applied."""
    current, raw = pipeline(
        lambda pipe: pipe.get(keys.views_batch_id_key()).hgetall(keys.views_processing_key()), transaction=True
    )
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
    DROP_IF_CURRENT([keys.views_processing_key(), keys.views_batch_id_key()], [batch_id])


def flush_view_counts() -> int:
    """Move aside, apply, drop, under a Redis lock (beat, retries and acks_late can overlap
    flushes). Returns how many reads were written to PostgreSQL (0 if another flush runs)."""
    lock = Lock(keys.views_flush_lock_key(), timeout=FLUSH_LOCK_SECONDS)
    if not lock.acquire():
        return 0
    try:
        batch_id = move_aside()
        if batch_id is None:
            return 0
        applied = apply_batch(batch_id)
        drop_batch(batch_id)
    finally:
        if not lock.release():
            logger.warning("views: the flush outlived its %d s lock", FLUSH_LOCK_SECONDS)
    maintain_trending()
    ViewCountFlush.objects.filter(created_at__lt=_days_ago(2)).delete()
    return applied


def _days_ago(days: int):
    from django.utils import timezone

    return timezone.now() - timezone.timedelta(days=days)


def maintain_trending() -> None:
    """Keep the current sorted set bounded (the previous one only shrinks in weight)."""
    command("zremrangebyrank", keys.trending_scores_key(_epoch(time.time())), 0, -(TRENDING_KEEP + 1))


def trending_ids(*, limit: int) -> list[int]:
    """Article ids by decayed read score, best first ([] when Redis has none or is down).

    Scores live in one sorted set per epoch, each relative to its epoch's start; the previous
    epoch's scores count with the decay they accumulated since (ZUNION ... WEIGHTS)."""
    epoch = _epoch(time.time())
    previous_weight = 2.0 ** (-EPOCH_SECONDS / HALF_LIFE)
    try:
        rows = command(
            "zunion",
            {keys.trending_scores_key(epoch): 1.0, keys.trending_scores_key(epoch - 1): previous_weight},
            withscores=True,
        )
    except (L2Unavailable, redis.RedisError):
        return []
    rows.sort(key=lambda row: row[1], reverse=True)
    return [int(member) for member, _ in rows[: limit * 3]]
