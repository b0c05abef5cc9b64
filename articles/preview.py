"""Previews: an article that is not live (a draft, a scheduled story) or an unsaved change, shown
exactly as the public page and JSON will render it, to editors and to whoever they share a link
with (issue 33).

- A share link is `/preview/<token>/` (the page) or `/api/preview/<token>/` (the JSON), the token
  a signed, timestamped article id and preview epoch (django.core.signing, salt
  "articles.preview"): it works for PREVIEW_LINK_SECONDS (settings, 3 days) while the article is
  a draft or scheduled, and never again once its status changed (publishing, unpublishing: the
  epoch moves) or an editor revoked the links; a live or taken-down article's links end too.
  An ended link is a 404, as for a token that is not ours. No account is needed to open one; a
  view is charged to the client's budget of uncached reads (newsite/throttle.py).
- An unsaved change is previewed from the admin's change form ("Preview changes": the form's
  fields posted to the admin, rendered without saving; never a link), or by an editorial client:
  POST /api/articles/{id}/preview/ (JSON) or .../preview/page/ (HTML) with a PATCH body
  (services.article_with_change: the change on a copy, under the save's rules). Both render
  through `detail` below and pages.render_article.
- A preview is personal: `Cache-Control: private, no-store`, `X-Robots-Tag: noindex` and a robots
  meta tag; it never goes through the tiers (the views are not `cache_public`, so no L1, L2 or
  edge entry), and the edge passes its paths (only the public routes are cached there).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.utils import timezone

from . import selectors
from .models import Article, Visibility

SALT = "articles.preview"
DEFAULT_LINK_SECONDS = 3 * 24 * 3600


class LinkEnded(Exception):  # noqa: N818 (it names the situation)
    """The link expired, is not one of ours, or its article is live or gone."""


def link_seconds() -> int:
    return int(getattr(settings, "PREVIEW_LINK_SECONDS", DEFAULT_LINK_SECONDS))


def make_token(article: Article) -> tuple[str, datetime]:
    """A share token of the article and when it stops working."""
    token = signing.dumps({"a": article.pk, "e": article.preview_epoch}, salt=SALT, compress=True)
    return token, timezone.now() + timedelta(seconds=link_seconds())


def links(article: Article) -> dict:
    """What an editor shares: the page and JSON URLs of a fresh token, and its end; for a live
    article, its public URLs (no end)."""
    if article.visibility() is Visibility.LIVE:
        return {"url": article.get_absolute_url(), "api_url": f"/api/articles/{article.pk}/", "expires_at": None}
    token, expires_at = make_token(article)
    return {"url": f"/preview/{token}/", "api_url": f"/api/preview/{token}/", "expires_at": expires_at.isoformat()}


def article_of(token: str) -> Article:
    """The article a valid token names, not live yet (LinkEnded otherwise)."""
    try:
        data = signing.loads(token, salt=SALT, max_age=link_seconds())
        article_id, epoch = int(data["a"]), int(data["e"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:  # SignatureExpired is one
        raise LinkEnded("this preview link has expired or is not valid") from exc
    article = Article.objects.select_related("author", "category").filter(pk=article_id).first()
    if article is None:
        raise LinkEnded("this article no longer exists")
    if article.preview_epoch != epoch:
        raise LinkEnded("this preview link was revoked, or the article's status changed since")
    if article.visibility() not in (Visibility.DRAFT, Visibility.SCHEDULED):
        raise LinkEnded("this article is published or taken down: previews of it have ended")
    return article


def detail(article: Article) -> dict:
    """The public detail the article will have (a saved one with its counts; an unsaved change
    of one: its fields, with the saved article's counts)."""
    if article.pk is not None:
        saved = selectors.article_detail_any_state(article_id=article.pk) or {}
        counts = {"comment_count": saved.get("comment_count", 0), "like_count": saved.get("like_count", 0)}
    else:
        counts = {"comment_count": 0, "like_count": 0}
    article.comment_count, article.like_count = counts["comment_count"], counts["like_count"]
    if article.updated_at is None:  # never saved: as it would be now
        article.updated_at = timezone.now()
    return selectors.detail_of(article)


def personal(response: HttpResponse) -> HttpResponse:
    """What keeps a preview out of every shared cache and search engine."""
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    for header in ("Surrogate-Key", "Cache-Tag", "ETag", "Last-Modified"):
        if header in response:
            del response[header]
    return response
