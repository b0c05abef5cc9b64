"""The cache contract of articles, both sides in one module so they cannot drift:

- read side: the tags each public response carries (Surrogate-Key), built from the data it
  shows. The JSON views (articles/api.py) and their HTML twins (articles/pages.py) call the
  same builders; a page adds only what it shows besides its twin's data (the category nav,
  the breaking box) and its address by slug.
- write side: which tags a change to each model touches (the table below).

tests/articles/test_cache_contract.py runs every public endpoint against every write of the
table: a write that changes what an endpoint answers must touch a tag that endpoint carries.

| change | tags invalidated |
|---|---|
| Article saved, any field | article:{id}, article-slug:{old slug}, article-slug:{new slug} |
| ... visible before or after, and publication, published_at, expires_at, category, author or is_breaking changed (incl. create/delete) | + articles, feed:home, feed:category:{old}, feed:category:{new}, author:{old}, author:{new}, trending, search |
| ... visible, and title/excerpt/body changed | + search |
| ... is_breaking before or after | + breaking |
| Comment created/deleted | article-counts:{article_id} (comment_count, comments on the page) |
| Like created/deleted | article-counts:{article_id} (like_count) |
| Author saved/deleted | author:{id}, articles (lists show author names; details are tagged author:{id}) |
| Category saved/deleted | category:{id}, feed:category:{id}, categories, articles |
| Follow created/deleted, profile edited | user:{user_id} (private, app tiers only) |
| User renamed (username) | article-counts:{id} of each article they commented on (the page shows their name) |

"visible" means published (live, or scheduled: a change of its schedule re-caps the lists, whose
lifetime ends at the next scheduled moment). A scheduled go-live or take-down
(articles/schedule.py) touches what publishing or unpublishing the article would; a breaking item
leaving its 6 h window touches `breaking`, a 48 h old one `news-sitemap`, a 30 day old one
`trending`. Lists carry `article:{id}` for each item, so an edit of a listed
article reaches every list holding it without touching the feed tags; the feed tags are for
changes of membership or order. Every invalidation runs after the transaction commits
(caching.invalidate_tags_on_commit); the CDN outbox rows are written inside it.
"""

from __future__ import annotations

from caching import invalidate_tags_on_commit

from . import tags as T
from .models import Article, Comment

# --- read side: the tags of each public response ----------------------------------------------


def _list_tags(items, *own: str) -> list[str]:
    """An article list depends on its own tags plus `article:{id}` of every item."""
    return [*own, *T.article_tags(item["id"] for item in items)]


def home_feed_tags(feed: dict) -> list[str]:
    return _list_tags(feed["results"], T.articles_tag(), T.home_feed_tag())


def trending_tags(data: dict) -> list[str]:
    return _list_tags(data["results"], T.trending_tag(), T.articles_tag())


def breaking_tags(data: dict) -> list[str]:
    return _list_tags(data["results"], T.breaking_tag(), T.articles_tag())


def search_tags(data: dict) -> list[str]:
    return _list_tags(data["results"], T.search_tag(), T.articles_tag())


def category_feed_tags(feed: dict) -> list[str]:
    cid = feed["category"]["id"]
    return _list_tags(feed["results"], T.category_tag(cid), T.category_feed_tag(cid), T.articles_tag())


def author_feed_tags(feed: dict) -> list[str]:
    return _list_tags(feed["results"], T.author_tag(feed["author"]["id"]), T.articles_tag())


def category_list_tags(data: dict) -> list[str]:
    return [T.categories_tag(), *(T.category_tag(c["id"]) for c in data["results"])]


def author_tags(author: dict) -> list[str]:
    return [T.author_tag(author["id"])]


def article_tags(article: dict) -> list[str]:
    """An article's detail (JSON and page): the article, its counts (comments, likes), its
    author's and category's names."""
    return [T.article_tag(article["id"]), T.article_counts_tag(article["id"]), T.author_tag(article["author"]["id"]),
            T.category_tag(article["category"]["id"])]


def category_nav_tags() -> list[str]:
    """The category nav of every HTML page (the names only: `categories` covers them)."""
    return [T.categories_tag()]


def home_page_tags(feed: dict, breaking: dict) -> list[str]:
    return [*home_feed_tags(feed), *breaking_tags(breaking), *category_nav_tags()]


def article_page_tags(article: dict) -> list[str]:
    """The page is addressed by slug: `article-slug:{slug}` is also the tag of its 404."""
    return [*article_tags(article), T.article_slug_tag(article["slug"]), *category_nav_tags()]


def category_page_tags(feed: dict) -> list[str]:
    return [*category_feed_tags(feed), *category_nav_tags()]


def home_syndication_tags(feed: dict) -> list[str]:
    """The home RSS/Atom feed shows the home feed's first page: its twin's tags."""
    return home_feed_tags(feed)


def category_syndication_tags(feed: dict) -> list[str]:
    """A category's RSS/Atom feed: its category feed's tags (the title shows the category name)."""
    return category_feed_tags(feed)


def sitemap_index_tags() -> list[str]:
    """The index lists the pages of each section: their number changes when an article is
    published or unpublished (`articles`), a category appears (`categories`) or an article
    leaves the news sitemap's window (`news-sitemap`)."""
    return [T.articles_tag(), T.categories_tag(), T.news_sitemap_tag()]


def sitemap_pages_tags() -> list[str]:
    """The section of the front page and the category pages (their slugs)."""
    return [T.categories_tag()]


def sitemap_articles_tags(rows) -> list[str]:
    """A page of the articles (or news) sitemap: membership (`articles`) and each row's slug,
    lastmod and title (`article:{id}`: an edit of one row touches only its own tags)."""
    return _list_tags(rows, T.articles_tag())


def news_sitemap_tags(rows) -> list[str]:
    """A page of the news sitemap: as the articles sitemap's, and its window (`news-sitemap`)."""
    return [*sitemap_articles_tags(rows), T.news_sitemap_tag()]


def robots_tags() -> list[str]:
    """robots.txt shows no data: nothing invalidates it (it expires by its TTL)."""
    return []


# Tags of a cached 404, from the URL kwargs: what the creation of the missing object touches.


def missing_article_tags(kwargs: dict) -> list[str]:
    return [T.article_tag(kwargs["article_id"])]


def missing_article_page_tags(kwargs: dict) -> list[str]:
    return [T.article_slug_tag(kwargs["slug"])]


def missing_category_tags(kwargs: dict) -> list[str]:
    """An unknown category slug: any category saved (created, renamed) touches `categories`."""
    return [T.categories_tag()]


def missing_author_tags(kwargs: dict) -> list[str]:
    return [T.author_tag(kwargs["author_id"])]


def missing_sitemap_page_tags(kwargs: dict) -> list[str]:
    """A sitemap page past the end: a published article may create it."""
    return [T.articles_tag(), T.categories_tag()]


# --- write side: the tags each change touches ---------------------------------------------------

# Fields whose change can move an article into, out of, or within a list.
_MEMBERSHIP_FIELDS = ("status", "published_at", "expires_at", "category_id", "author_id", "is_breaking")
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


def article_schedule_tags(state: dict) -> set[str]:
    """What a scheduled go-live or take-down of the article in `state` touches (a snapshot or a
    row with SNAPSHOT_FIELDS): what publishing or unpublishing it would."""
    return article_tags_for_change({**state, "status": Article.Status.DRAFT}, state)


def article_changed(*, old: dict | None, new: dict | None) -> None:
    invalidate_tags_on_commit(article_tags_for_change(old, new))


def article_counts_changed(*, article_id: int) -> None:
    """A reader's comment or like: only what shows the counts (the detail and the page), not
    every list that holds the article (issue 28.1: a like/unlike loop must not keep them cold)."""
    invalidate_tags_on_commit([T.article_counts_tag(article_id)])


def author_changed(*, author_id: int) -> None:
    invalidate_tags_on_commit([T.author_tag(author_id), T.articles_tag()])


def category_changed(*, category_id: int) -> None:
    invalidate_tags_on_commit(
        [T.category_tag(category_id), T.category_feed_tag(category_id), T.categories_tag(), T.articles_tag()]
    )


def user_changed(*, user_id: int) -> None:
    invalidate_tags_on_commit([T.user_tag(user_id)])


def commenter_renamed(*, user_id: int) -> None:
    """A user's name changed: the pages that show it under their comments (issue 28.10), through
    the tag of what shows an article's comments and counts. One query (their articles)."""
    article_ids = Comment.objects.filter(user_id=user_id).order_by().values_list("article_id", flat=True).distinct()
    invalidate_tags_on_commit([T.article_counts_tag(article_id) for article_id in article_ids])
