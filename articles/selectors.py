"""Reads. One function per read, each returning plain data (dicts, lists, str, int, bool, None)
that can be cached and serialised as is. Nothing here knows about HTTP. Public responses are
cached whole by the response middleware (caching/middleware.py), so most reads here do not touch
the tiers; two go through them themselves: article_is_published (the view counter's existence
check) and user_profile_cached (a private per-user key).

Time: every public read goes through ONE visibility rule (`visible_articles`, the model's
`ArticleQuerySet.visible`: published, published_at reached, not taken down), evaluated at one
`now` per read. A read whose answer changes at a known moment names it with
`caching.lifetime.valid_until` (a list: the next go-live or take-down in its scope, or when its
oldest item leaves its window; a detail: its take-down; a scheduled article's 404: its go-live),
and the tiers keep it no longer (docs/http.md, "Time").

Costs: the page selectors run one query (two for a category or author feed, which first resolve
the category/author) plus one for the next scheduled moment of a list (articles/schedule.py: an
index probe per bound); a detail is one query, its comment and like counts as subqueries.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection, connections, transaction
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from caching import get_or_load
from caching.lifetime import valid_until

from . import images, keys, tags
from .models import Article, Author, Category, Comment, Follow, Like, Visibility
from .params import SEARCH_MAX_PAGE
from .schedule import BREAKING_WINDOW, NEWS_SITEMAP_WINDOW, TRENDING_WINDOW, next_change

PAGE_SIZE = 20
SEARCH_CANDIDATES = SEARCH_MAX_PAGE * PAGE_SIZE  # the newest matches a search ranks
# A search statement's ceiling: the worst seen on 50,000 articles took ~55 ms (a word in 7% of
# them, the planner scanning the feed index); one that runs past this is cancelled.
SEARCH_TIMEOUT_MS = 500
BREAKING_LIMIT = 5
TRENDING_LIMIT = 10

_SUMMARY_FIELDS = (
    "id",
    "title",
    "slug",
    "excerpt",
    "published_at",
    "updated_at",
    "is_breaking",
    "hero_image_url",
    "hero_renditions",
    "version",
    "author__id",
    "author__name",
    "author__avatar_url",
    "category__id",
    "category__name",
    "category__slug",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def visible_articles(at: datetime | None = None) -> QuerySet[Article]:
    """What readers may see at `at` (default now): the visibility rule (ArticleQuerySet.visible)."""
    return Article.objects.visible(at)


def _visible_or_until(article: Article | None, now: datetime) -> Article | None:
    """`article` (a published row, or None) if it is live at `now`, naming when that changes: its
    take-down, or, for a scheduled one (None here), its go-live."""
    if article is None:
        return None
    state = article.visibility(now)
    if state is Visibility.SCHEDULED:
        valid_until(article.published_at)
        return None
    if state is not Visibility.LIVE:
        return None
    valid_until(article.expires_at)
    return article


def _hero_image_url(article: Article) -> str:
    """The uploaded image's largest JPEG rendition, else the stored URL (API clients since
    before uploads read this field; the renditions are the detail's `hero_image`)."""
    hero = images.hero_image_data(article.hero_renditions)
    return hero["src"] if hero else article.hero_image_url


def _summary(article: Article) -> dict:
    return {
        "id": article.id,
        "title": article.title,
        "slug": article.slug,
        "excerpt": article.excerpt,
        "url": f"/articles/{article.slug}/",
        "published_at": _iso(article.published_at),
        "updated_at": _iso(article.updated_at),
        "is_breaking": article.is_breaking,
        "hero_image_url": _hero_image_url(article),
        "thumbnail": images.thumbnail_data(article.hero_renditions),
        "version": article.version,
        "author": {"id": article.author.id, "name": article.author.name, "avatar_url": article.author.avatar_url},
        "category": {"id": article.category.id, "name": article.category.name, "slug": article.category.slug},
    }


def _page(queryset: QuerySet[Article], page: int) -> dict:
    """One query: PAGE_SIZE + 1 rows tell whether a next page exists without a COUNT."""
    offset = (page - 1) * PAGE_SIZE
    rows = list(
        queryset.select_related("author", "category")
        .only(*_SUMMARY_FIELDS)
        .order_by("-published_at", "-id")[offset : offset + PAGE_SIZE + 1]
    )
    has_next = len(rows) > PAGE_SIZE
    items = [_summary(a) for a in rows[:PAGE_SIZE]]
    return {
        "page": page,
        "page_size": PAGE_SIZE,
        "next": page + 1 if has_next else None,
        "previous": page - 1 if page > 1 else None,
        "results": items,
    }


def last_modified_of(items: list[dict]) -> str | None:
    """The newest `updated_at` among summaries (ISO strings compare in order when all are UTC)."""
    stamps = [i["updated_at"] for i in items if i.get("updated_at")]
    return max(stamps) if stamps else None


# --- public reads ----------------------------------------------------------------------------


def home_feed(*, page: int) -> dict:
    """A page of visible articles, newest first, until the next go-live or take-down. Two queries."""
    now = timezone.now()
    valid_until(next_change(now=now))
    return _page(visible_articles(now), page)


def _with_counts(queryset: QuerySet[Article]) -> QuerySet[Article]:
    """Comment and like counts as correlated subqueries: the detail is ONE query (a cache miss
    on the Zipf tail costs one round trip to PostgreSQL, not three)."""

    def count_of(model):
        rows = model.objects.filter(article_id=OuterRef("pk")).order_by().values("article_id")
        return Coalesce(Subquery(rows.annotate(n=Count("*")).values("n")[:1]), 0)

    return queryset.select_related("author", "category").annotate(
        comment_count=count_of(Comment), like_count=count_of(Like)
    )


def _published() -> QuerySet[Article]:
    """Published rows, live or not: a detail reads its row once and applies the visibility rule
    itself (`_visible_or_until`), so a scheduled article's 404 knows its go-live."""
    return Article.objects.filter(status=Article.Status.PUBLISHED)


def article_detail(*, article_id: int) -> dict | None:
    """A live article with author, category and counts, or None (until its go-live, for a
    scheduled one). One query."""
    now = timezone.now()
    article = _visible_or_until(_with_counts(_published()).filter(pk=article_id).first(), now)
    return _detail(article) if article is not None else None


def article_detail_by_slug(*, slug: str) -> dict | None:
    """As article_detail, addressed by slug. One query."""
    now = timezone.now()
    article = _visible_or_until(_with_counts(_published()).filter(slug=slug).first(), now)
    return _detail(article) if article is not None else None


def article_detail_any_state(*, article_id: int) -> dict | None:
    """What the public detail of an article shows (or would show, were it live), whatever its
    state: the editorial side's view of it (its ETag is the public detail's). One query."""
    article = _with_counts(Article.objects.all()).filter(pk=article_id).first()
    return _detail(article) if article is not None else None


def article_details(*, article_ids) -> dict[int, dict]:
    """{id: article_detail} of the live ones among `article_ids` without a take-down time (the
    others are left out: a batch shares one lifetime, and an article that goes away at a moment
    would cap the whole batch: bulk_warm_article_ids leaves them out of the batches, their first
    reader fills them). One query for the whole batch (counts
    as subqueries, author and category joined): the bulk loader of `warm_cache --all`."""
    rows = _with_counts(visible_articles()).filter(pk__in=list(article_ids), expires_at__isnull=True)
    return {article.id: _detail(article) for article in rows}


def published_article_ids() -> list[int]:
    """The ids of every live article, most read first (what to warm first). One query."""
    return list(visible_articles().order_by("-view_count", "-id").values_list("id", flat=True))


def bulk_warm_article_ids() -> list[int]:
    """As published_article_ids, without the articles that have a take-down time: the bulk
    loader (article_details) leaves those to their first reader, and a key it left out would be
    stored as a 404. One query."""
    return list(visible_articles().filter(expires_at__isnull=True).order_by("-view_count", "-id")
                .values_list("id", flat=True))


def _detail(article: Article) -> dict:
    data = _summary(article)
    data.update(
        body=article.body,
        hero_image=images.hero_image_data(article.hero_renditions),
        author={**data["author"], "bio": article.author.bio},
        comment_count=article.comment_count,
        like_count=article.like_count,
        corrections=list(article.corrections or ()),
    )
    return data


def detail_of(article: Article) -> dict:
    """The public detail of an article object as it stands (saved or not: articles/preview.py),
    with `comment_count` and `like_count` set on it by the caller. No query."""
    return _detail(article)


def article_revisions(*, article: Article, limit: int = 100) -> list[dict]:
    """The article's newest `limit` revisions, newest first, each with who, when, why and which
    fields it changed from the revision before. One query (django-simple-history's table)."""
    rows = list(article.history.select_related("history_user").order_by("-history_date", "-history_id")[: limit + 1])
    out = []
    for newer, older in zip(rows, [*rows[1:], None], strict=True):
        if len(out) == limit:
            break
        changed = sorted(newer.diff_against(older, foreign_keys_are_objs=False).changed_fields) if older else []
        out.append({
            "id": newer.history_id,
            "version": newer.version,
            "date": _iso(newer.history_date),
            "user": newer.history_user.get_username() if newer.history_user else None,
            "reason": newer.history_change_reason or "",
            "type": {"+": "created", "~": "changed", "-": "deleted"}[newer.history_type],
            "changed_fields": changed,
        })
    return out


def article_comments(*, article_id: int, limit: int = 20) -> list[dict]:
    """The newest `limit` comments of an article. One query."""
    rows = (
        Comment.objects.filter(article_id=article_id)
        .select_related("user")
        .only("id", "body", "created_at", "user__username")[:limit]
    )
    return [{"id": c.id, "user": c.user.username, "body": c.body, "created_at": _iso(c.created_at)} for c in rows]


def trending(*, limit: int = TRENDING_LIMIT) -> dict:
    """Most read recently: ids from the time-decayed Redis score (articles/counters.py), then
    one query for those articles. Falls back to the stored view_count of the last
    TRENDING_WINDOW when Redis has no scores yet (cold start, or Redis down)."""
    from .counters import trending_ids

    ids = trending_ids(limit=limit)
    now = timezone.now()
    base = visible_articles(now).select_related("author", "category").only(*_SUMMARY_FIELDS, "view_count")
    if ids:
        valid_until(next_change(now=now))
        by_id = {a.id: a for a in base.filter(pk__in=ids)}
        rows = [by_id[i] for i in ids if i in by_id][:limit]
    else:
        in_window = base.filter(published_at__gt=now - TRENDING_WINDOW)
        valid_until(next_change(now=now, leaving=(in_window, TRENDING_WINDOW)))
        rows = list(in_window.order_by("-view_count", "-published_at")[:limit])
    return {"results": [{**_summary(a), "view_count": a.view_count} for a in rows]}


def article_is_published(*, article_id: int) -> bool:
    """Through the tiers: the view counter's existence check costs no query on a hit. An unknown
    or unpublished id is a short negative entry (None, 30 s), so random ids cannot fill L2; a
    scheduled one lasts until its go-live, a live one until its take-down."""

    def load():
        row = _published().filter(pk=article_id).only("status", "published_at", "expires_at").first()
        return True if _visible_or_until(row, timezone.now()) is not None else None

    return bool(get_or_load(keys.article_published_key(article_id), load, kind="article",
                            tags=[tags.article_tag(article_id)]))


def breaking_news() -> dict:
    """Breaking articles published in the last 6 hours, newest first, at most 5; until the next
    breaking go-live or take-down, or the moment the oldest listed leaves the window (older ones
    left it before). Two queries."""
    now = timezone.now()
    rows = list(
        visible_articles(now)
        .filter(is_breaking=True, published_at__gt=now - BREAKING_WINDOW)
        .select_related("author", "category")
        .only(*_SUMMARY_FIELDS)
        .order_by("-published_at", "-id")[:BREAKING_LIMIT]
    )
    valid_until(next_change(now=now, scope=Q(is_breaking=True)))
    if rows:
        valid_until(min(a.published_at for a in rows) + BREAKING_WINDOW)
    return {"results": [_summary(a) for a in rows]}


def category_list() -> dict:
    """Every category, by name. One query."""
    return {"results": [{"id": c.id, "name": c.name, "slug": c.slug} for c in Category.objects.order_by("name")]}


def category_by_slug(*, slug: str) -> dict | None:
    category = Category.objects.filter(slug=slug).first()
    if category is None:
        return None
    return {"id": category.id, "name": category.name, "slug": category.slug}


def category_feed(*, slug: str, page: int) -> dict | None:
    """A category and a page of its articles, or None when the slug is unknown. Two queries."""
    category = category_by_slug(slug=slug)
    if category is None:
        return None
    now = timezone.now()
    valid_until(next_change(now=now, scope=Q(category_id=category["id"])))
    return {"category": category, **_page(visible_articles(now).filter(category_id=category["id"]), page)}


def author_detail(*, author_id: int) -> dict | None:
    """An author and their count of published articles, or None. Two queries."""
    author = Author.objects.filter(pk=author_id).first()
    if author is None:
        return None
    now = timezone.now()
    valid_until(next_change(now=now, scope=Q(author_id=author.id)))
    return {
        "id": author.id,
        "name": author.name,
        "bio": author.bio,
        "avatar_url": author.avatar_url,
        "article_count": visible_articles(now).filter(author_id=author.id).count(),
    }


def author_feed(*, author_id: int, page: int) -> dict | None:
    """An author and a page of their published articles, or None when unknown. Two queries."""
    author = Author.objects.filter(pk=author_id).only("id", "name", "avatar_url").first()
    if author is None:
        return None
    now = timezone.now()
    valid_until(next_change(now=now, scope=Q(author_id=author.id)))
    return {
        "author": {"id": author.id, "name": author.name, "avatar_url": author.avatar_url},
        **_page(visible_articles(now).filter(author_id=author.id), page),
    }


@contextmanager
def _time_limit(alias: str, milliseconds: int):
    """PostgreSQL cancels a statement of the block that runs longer (statement_timeout set local
    to a transaction or savepoint of the block's own; when that is a savepoint of an outer
    transaction, the previous value is set back after the block: releasing a savepoint would
    keep it; a cancelled block's savepoint rollback undoes it)."""
    if connections[alias].vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout'), "
                       "set_config('statement_timeout', %s, true)", [f"{int(milliseconds)}ms"])
        previous = cursor.fetchone()[0]
        yield
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])


def search(*, q: str, page: int) -> dict:
    """Full-text search: PostgreSQL websearch syntax; of the SEARCH_CANDIDATES newest matches,
    ranked by title > excerpt > body weights, within SEARCH_TIMEOUT_MS (PostgreSQL cancels a
    longer query: the reader gets a 503 with Retry-After); icontains on SQLite. Until the next
    go-live or take-down anywhere. Two queries."""
    now = timezone.now()
    valid_until(next_change(now=now))
    qs = visible_articles(now)
    if connection.vendor == "postgresql":
        query = SearchQuery(q, config="english", search_type="websearch")
        # Bounded cost (issue 28.3): only the SEARCH_CANDIDATES newest matches are ranked, so a
        # query matching every article ("-zzz", a long OR) ranks 1,000 rows, not 50,000.
        candidates = qs.filter(search_vector=query).order_by("-published_at", "-id").values("id")[:SEARCH_CANDIDATES]
        qs = (
            Article.objects.filter(id__in=candidates)
            .annotate(rank=SearchRank(F("search_vector"), query))
            .select_related("author", "category")
            .only(*_SUMMARY_FIELDS)
            .order_by("-rank", "-published_at", "-id")
        )
    else:
        qs = (
            qs.filter(Q(title__icontains=q) | Q(excerpt__icontains=q))
            .select_related("author", "category")
            .only(*_SUMMARY_FIELDS)
            .order_by("-published_at", "-id")
        )
    offset = (page - 1) * PAGE_SIZE
    with _time_limit(qs.db, SEARCH_TIMEOUT_MS):
        rows = list(qs[offset : offset + PAGE_SIZE + 1])
    return {
        "q": q,
        "page": page,
        "page_size": PAGE_SIZE,
        "next": page + 1 if len(rows) > PAGE_SIZE else None,
        "previous": page - 1 if page > 1 else None,
        "results": [_summary(a) for a in rows[:PAGE_SIZE]],
    }


# --- personal reads (never cached under a public key) ------------------------------------------


def user_profile(*, user) -> dict:
    """The user's own data and what they follow. Two queries."""
    follows = Follow.objects.filter(user=user).values_list("author_id", "category_id")
    author_id = Author.objects.filter(user=user).values_list("id", flat=True).first()
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "author_id": author_id,
        "follows": {
            "authors": sorted(a for a, _ in follows if a is not None),
            "categories": sorted(c for _, c in follows if c is not None),
        },
    }


def user_profile_cached(*, user) -> dict:
    """The profile through L1/L2 under a private per-user key (never a public key, never a CDN
    tag). Kept fresh by write-through in services.profile_update and by Follow changes."""
    return get_or_load(
        keys.user_profile_key(user.id),
        lambda: user_profile(user=user),
        kind="user_profile",
        tags=[tags.user_tag(user.id)],
    )


def user_feed(*, user, page: int) -> dict:
    """Articles by followed authors or in followed categories, newest first. One query."""
    follows = Follow.objects.filter(user=user)
    qs = visible_articles().filter(
        Q(author_id__in=follows.filter(author__isnull=False).values("author_id"))
        | Q(category_id__in=follows.filter(category__isnull=False).values("category_id"))
    )
    return _page(qs, page)


def user_follows(*, user) -> dict:
    rows = Follow.objects.filter(user=user).order_by("-created_at", "-id")
    return {
        "results": [
            {"id": f.id, "author_id": f.author_id, "category_id": f.category_id, "created_at": _iso(f.created_at)}
            for f in rows
        ]
    }


# --- feeds and sitemaps (articles/feeds.py, articles/sitemaps.py) -------------------------------

_SITEMAP_FIELDS = ("id", "slug", "title", "published_at", "updated_at")


def sitemap_articles() -> QuerySet:
    """Every live article as {id, slug, title, published_at, updated_at} rows, oldest first:
    a new article lands on the last page, so the earlier pages keep their bytes (and ETags).
    Lazy: the sitemap paginator runs one COUNT and one page query (and one for the next moment)."""
    now = timezone.now()
    valid_until(next_change(now=now))
    return visible_articles(now).order_by("published_at", "id").values(*_SITEMAP_FIELDS)


def news_sitemap_articles() -> QuerySet:
    """As sitemap_articles, for the articles published in the last 48 hours (Google News),
    newest first; until the next go-live or take-down, or the moment the oldest leaves the window."""
    now = timezone.now()
    in_window = visible_articles(now).filter(published_at__gt=now - NEWS_SITEMAP_WINDOW)
    valid_until(next_change(now=now, leaving=(in_window, NEWS_SITEMAP_WINDOW)))
    return in_window.order_by("-published_at", "-id").values(*_SITEMAP_FIELDS)
