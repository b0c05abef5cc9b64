"""The tag matrix: which cache tags a change to each model touches. One place, one table.

| change | tags invalidated |
|---|---|
| Article saved, any field | article:{id}, article-slug:{old slug}, article-slug:{new slug} |
| ... visible before or after, and publication, published_at, category, author or is_breaking changed (incl. create/delete) | + articles, feed:home, feed:category:{old}, feed:category:{new}, author:{old}, author:{new}, trending, search |
| ... visible, and title/excerpt/body changed | + search |
| ... is_breaking before or after | + breaking |
| Comment created/deleted | article:{article_id} (comment_count, comments on the page) |
| Like created/deleted | article:{article_id} (like_count) |
| Author saved/deleted | author:{id}, articles (lists show author names; details are tagged author:{id}) |
| Category saved/deleted | category:{id}, feed:category:{id}, categories, articles |
| Follow created/deleted, profile edited | user:{user_id} (private, app tiers only) |

"visible" means published. Lists carry `article:{id}` for each item, so an edit of a listed
article reaches every list holding it without touching the feed tags; the feed tags are for
changes of membership or order. Every invalidation runs after the transaction commits
(caching.invalidate_tags_on_commit); the CDN outbox rows are written inside it.
"""

from __future__ import annotations

from caching import invalidate_tags_on_commit
from caching import tags as T

from .models import Article

# Fields whose change can move an article into, out of, or within a list.
_MEMBERSHIP_FIELDS = ("status", "published_at", "category_id", "author_id", "is_breaking")
_TEXT_FIELDS = ("title", "excerpt", "body")
SNAPSHOT_FIELDS = ("id", "slug", *_MEMBERSHIP_FIELDS, *_TEXT_FIELDS)


def snapshot(article: Article) -> dict:
    return {f: getattr(article, f) for f in SNAPSHOT_FIELDS}


def article_tags_for_change(old: dict | None, new: dict | None) -> set[str]:
    """Tags touched when an article goes from `old` to `new` (None: did not exist / deleted)."""
    states = [s for s in (old, new) if s is not None]
    article_id = states[0]["id"]
    tags = {T.article_tag(article_id)}
    tags.update(T.article_slug_tag(s["slug"]) for s in states)
    visible = [s for s in states if s["status"] == Article.Status.PUBLISHED]
    if not visible:
        return tags  # a draft before and after: nothing public changed
    membership_changed = old is None or new is None or any(old[f] != new[f] for f in _MEMBERSHIP_FIELDS)
    if membership_changed:
        tags |= {T.articles_tag(), T.home_feed_tag(), T.trending_tag(), T.search_tag()}
        for s in states:
            tags |= {T.category_feed_tag(s["category_id"]), T.author_tag(s["author_id"])}
    elif any(old[f] != new[f] for f in _TEXT_FIELDS):
        tags.add(T.search_tag())
    if any(s["is_breaking"] for s in states):
        tags.add(T.breaking_tag())
    return tags


def article_changed(*, old: dict | None, new: dict | None) -> None:
    invalidate_tags_on_commit(article_tags_for_change(old, new))


def article_counts_changed(*, article_id: int) -> None:
    invalidate_tags_on_commit([T.article_tag(article_id)])


def author_changed(*, author_id: int) -> None:
    invalidate_tags_on_commit([T.author_tag(author_id), T.articles_tag()])


def category_changed(*, category_id: int) -> None:
    invalidate_tags_on_commit(
        [T.category_tag(category_id), T.category_feed_tag(category_id), T.categories_tag(), T.articles_tag()]
    )


def user_changed(*, user_id: int) -> None:
    invalidate_tags_on_commit([T.user_tag(user_id)])
