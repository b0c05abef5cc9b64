"""The keys and tags these tests cache under, built the way an app builds its own (the library
knows no app's vocabulary: the site's live in articles/keys.py and articles/tags.py)."""

from __future__ import annotations


def article_tag(article_id: int) -> str:
    return f"article:{int(article_id)}"


def author_tag(author_id: int) -> str:
    return f"author:{int(author_id)}"


def article_key(article_id: int) -> str:
    return f"article:{int(article_id)}"
