"""Time as a change: the moments at which what readers see changes without a write.

A moment is a go-live (a published article's `published_at` reached), a take-down (its
`expires_at` reached) or a window edge (a breaking item 6 h old leaves /api/breaking-news/, a
48 h old one the news sitemap, a 30 day old one the trending fallback). Two mechanisms keep
every tier exact at them (docs/http.md, "Time"):

1. `next_change()`: the reads (articles/selectors.py) ask for the next moment in their scope
   and name it with caching.lifetime.valid_until, so nothing they build is kept past it, in L1,
   L2, the edge or a browser.
2. `fire_due_changes()`: the beat task articles.fire_scheduled_changes (every
   SCHEDULE_TICK_SECONDS) invalidates, at each moment, the tags a write making that change would
   invalidate, through the same path as a write (caching.invalidate_tags_on_commit: the CDN
   outbox row in the transaction, the app tiers after commit). It removes what the caps cannot:
   stale copies an edge keeps for stale-if-error, and any copy a cache kept longer than it was
   told. A cursor row (ScheduleCursor) says up to when the moments were fired: a run takes it
   with SELECT ... FOR UPDATE SKIP LOCKED (one run at a time in a cluster; another returns at
   once), fires (cursor, now] and moves it, in one transaction. A worker or beat that was down
   fires what it missed on its first run; meanwhile the visibility rule already answers right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from caching import invalidate_tags_on_commit

from . import invalidation
from . import tags as T
from .models import Article, ScheduleCursor

# The product's windows (selectors.py reads them from here).
BREAKING_WINDOW = timedelta(hours=6)
NEWS_SITEMAP_WINDOW = timedelta(hours=48)
TRENDING_WINDOW = timedelta(days=30)
CURSOR = "articles"
# A cursor made for the first time starts this far back (moments older than that were served
# right by the visibility rule; what caches kept of them expired with their caps).
FIRST_LOOKBACK = timedelta(hours=1)


def _published() -> QuerySet[Article]:
    return Article.objects.filter(status=Article.Status.PUBLISHED)


def _first(queryset: QuerySet, field_name: str) -> QuerySet:
    return queryset.order_by(field_name).values(field_name)[:1]


def _as_datetime(value) -> datetime | None:
    """A raw cursor's datetime as an aware one: SQLite hands back strings or naive datetimes (its
    storage is UTC under USE_TZ)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = parse_datetime(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def next_change(*, now: datetime, scope: Q | None = None,
                leaving: tuple[QuerySet, timedelta] | None = None) -> datetime | None:
    """The next moment after `now` at which the articles visible in `scope` change: a go-live
    or a take-down there, or, with `leaving` = (the visible articles in a window, its length),
    the moment the oldest of them leaves it. None: nothing is scheduled.

    One query: each bound is an ORDER BY ... LIMIT 1 subquery on an index (article_feed_idx and
    its category/author/breaking twins, article_expiry_idx)."""
    scoped = _published().filter(scope) if scope is not None else _published()
    bounds = [
        _first(scoped.filter(published_at__gt=now), "published_at"),
        _first(scoped.filter(expires_at__gt=now), "expires_at"),
    ]
    if leaving is not None:
        bounds.append(_first(leaving[0], "published_at"))
    compiled = [bound.query.sql_with_params() for bound in bounds]
    sql = "SELECT " + ", ".join(f"({part})" for part, _ in compiled)
    params = [param for _, part_params in compiled for param in part_params]
    with connections[scoped.db].cursor() as cursor:
        cursor.execute(sql, params)
        row = [_as_datetime(value) for value in cursor.fetchone()]
    if leaving is not None and row[-1] is not None:
        row[-1] = row[-1] + leaving[1]
    moments = [moment for moment in row if moment is not None]
    return min(moments) if moments else None


# --- firing the moments -------------------------------------------------------------------------


@dataclass
class Fired:
    """What one run fired: the window (after, through], the changes found, the tags invalidated."""

    after: datetime | None = None
    through: datetime | None = None
    go_live: list[int] = field(default_factory=list)
    take_down: list[int] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    tags: int = 0
    skipped: bool = False  # another run holds the cursor

    def as_dict(self) -> dict:
        return {"after": self.after and self.after.isoformat(), "through": self.through and self.through.isoformat(),
                "go_live": self.go_live, "take_down": self.take_down, "windows": self.windows, "tags": self.tags,
                "skipped": self.skipped}


def due_tags(after: datetime, through: datetime, fired: Fired) -> set[str]:
    """The tags of every moment in (after, through], recorded in `fired`. Every one, also a
    go-live that its own save made ("publish now": published_at is the save's time): a later save
    that changed no membership field (a typo fixed a second after the go-live) touched only the
    article's own tags, so only the moment's run reaches the lists (one more invalidation of a
    just-published article's lists, ~1 s after its own)."""
    tags: set[str] = set()
    published = _published()
    changes = (
        (fired.go_live, published.filter(published_at__gt=after, published_at__lte=through)),
        (fired.take_down, published.filter(expires_at__gt=after, expires_at__lte=through)),
    )
    for ids, rows in changes:
        for state in rows.values(*invalidation.SNAPSHOT_FIELDS):
            ids.append(state["id"])
            tags |= invalidation.article_schedule_tags(state)
    windows = (
        ("breaking", BREAKING_WINDOW, published.filter(is_breaking=True), [T.breaking_tag()]),
        ("news_sitemap", NEWS_SITEMAP_WINDOW, published, [T.news_sitemap_tag()]),
        ("trending", TRENDING_WINDOW, published, [T.trending_tag()]),
    )
    for name, window, rows, window_tags in windows:
        if rows.filter(published_at__gt=after - window, published_at__lte=through - window).exists():
            fired.windows.append(name)
            tags.update(window_tags)
    return tags


def fire_due_changes(*, now: datetime | None = None) -> Fired:
    """Invalidate every moment between the cursor and `now` (default: now) as a write would, and
    move the cursor, in one transaction. Returns what it fired (`skipped`: another run holds
    the cursor). Costs: the cursor's lock, five index range probes, and when something is due
    one outbox row and one invalidation after commit."""
    now = now or timezone.now()
    ScheduleCursor.objects.get_or_create(name=CURSOR, defaults={"fired_through": now - FIRST_LOOKBACK})
    fired = Fired(through=now)
    with transaction.atomic():
        cursor = ScheduleCursor.objects.select_for_update(skip_locked=True).filter(name=CURSOR).first()
        if cursor is None:
            fired.skipped = True
            return fired
        fired.after = cursor.fired_through
        if now <= cursor.fired_through:
            return fired
        tags = due_tags(cursor.fired_through, now, fired)
        if tags:
            invalidate_tags_on_commit(tags)
        fired.tags = len(tags)
        cursor.fired_through = now
        cursor.save(update_fields=["fired_through"])
    return fired
