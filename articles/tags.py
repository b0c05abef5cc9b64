"""The articles app's tags (SPEC section 4), built here and nowhere else: the views tag their
responses with them and the write side (articles/invalidation.py) invalidates them. Tags name
what a cached value depends on; the same strings go to L2 tag indexes, L1 broadcasts and the CDN
(Surrogate-Key / Cache-Tag). The cache library (caching/) knows none of them."""

from __future__ import annotations

ARTICLES = "articles"
FEED_HOME = "feed:home"
TRENDING = "trending"
BREAKING = "breaking"
SEARCH = "search"


def articles_tag() -> str:
    return ARTICLES


def home_feed_tag() -> str:
    return FEED_HOME


def article_tag(article_id: int) -> str:
    return f"article:{int(article_id)}"


def author_tag(author_id: int) -> str:
    return f"author:{int(author_id)}"


def category_tag(category_id: int | str) -> str:
    return f"category:{category_id}"


def category_feed_tag(category_id: int | str) -> str:
    return f"feed:category:{category_id}"


def trending_tag() -> str:
    return TRENDING


def breaking_tag() -> str:
    return BREAKING


def search_tag() -> str:
    return SEARCH


def article_counts_tag(article_id: int) -> str:
    """What shows an article's comment and like counts (its detail and page), and nothing else:
    a reader's like or comment touches only this, never the lists that hold the article."""
    return f"article-counts:{int(article_id)}"


def article_tags(article_ids) -> list[str]:
    """One `article:{id}` tag per item of a list response."""
    return [article_tag(i) for i in article_ids]


CATEGORIES = "categories"


def categories_tag() -> str:
    """The category list (and 404s of unknown category slugs: a new category purges them)."""
    return CATEGORIES


def article_slug_tag(slug: str) -> str:
    """An article page addressed by slug (its cached 404 goes when an article takes the slug)."""
    return f"article-slug:{slug}"


def news_sitemap_tag() -> str:
    """The Google News sitemap and the index that counts its pages: an article leaving its 48 h
    window changes them and nothing else."""
    return "news-sitemap"


def user_tag(user_id: int) -> str:
    """Private per-user data (profile); never sent to a CDN."""
    return f"user:{int(user_id)}"
