"""Writes. Keyword-only, typed, named <entity>_<action>; each database write runs in one
transaction (article_register_view is a Redis counter: articles/counters.py).

Cache invalidation of the models hangs off their signals (articles/receivers.py), so that the
admin, the API, the shell and these services all invalidate the same way: CDN outbox rows inside
the transaction, the app tiers after commit. The exception is profile_update: the User model has
no receiver, so it invalidates the user's tag and writes the new profile through itself.
"""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from . import counters, images, invalidation, selectors
from .http import detail_etag, editorial_etag, etag_matches
from .models import Article, Author, Category, Comment, Follow, Like, Visibility, no_control_characters

ARTICLE_EDITABLE_FIELDS = frozenset(
    {"title", "slug", "excerpt", "body", "category", "author", "status", "published_at", "expires_at", "is_breaking",
     "hero_image_url", "hero_image"}
)


class ServiceError(ValueError):
    """A write refused for a reason the caller can show (becomes a 400)."""


class StaleEdit(ServiceError):
    """The article changed since the state the caller's edit was based on (a stale If-Match, an
    admin form opened before another save): refused, not applied over it (becomes a 412)."""


def _refuse_unknown_fields(data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ServiceError(f"fields not editable: {', '.join(sorted(unknown))}")


def unique_article_slug(title: str, *, exclude_id: int | None = None) -> str:
    base = slugify(title)[:200] or "article"
    slug, n = base, 1
    qs = Article.objects.all()
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    while qs.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


# What an edit writes: the editable columns (version and updated_at are added by Article.save),
# never view_count, which the counters' flush increments in place meanwhile.
_EDIT_COLUMNS = frozenset({*ARTICLE_EDITABLE_FIELDS, "hero_renditions"})


def _hero_columns(upload) -> dict[str, Any]:
    """The columns of a new hero image: an uploaded file (a Django File) is checked and stored
    with its renditions (articles/images.py: a ValidationError if it is not an acceptable image);
    False, None or "" removes the image; an images.StoredHero (a revision's) is set as it is. The
    files are written before the row is locked or saved; a rollback leaves content-addressed files
    that no row names (never a row naming no file)."""
    if not upload:
        return {"hero_image": "", "hero_renditions": []}
    stored = upload if isinstance(upload, images.StoredHero) else images.store_upload(upload)
    return {"hero_image": stored.name, "hero_renditions": stored.renditions}


def _save_article(article: Article, *, update_fields=None, by=None, reason: str | None = None) -> Article:
    """Publication rules, then save (version + 1, and a revision by `by` with `reason`: django-
    simple-history); a taken slug or a take-down time not after the go-live is a ServiceError. A
    published article with a future published_at is scheduled."""
    if by is not None and getattr(by, "is_authenticated", False):
        article._history_user = by
    if reason:
        article._change_reason = reason
    _save_rules(article)
    try:
        with transaction.atomic():
            article.save(update_fields=update_fields)
    except IntegrityError as exc:
        raise _slug_taken(article.slug) from exc
    return article


def _save_rules(article: Article) -> None:
    """What a save settles first (the article as given): a blank slug is made from the title (as
    article_create does; a blank one would be a page with no URL); published without a time goes
    live now; a take-down time not after the go-live is a ServiceError. One query for a blank slug."""
    if not article.slug:
        article.slug = unique_article_slug(article.title, exclude_id=article.pk)
    if article.status == Article.Status.PUBLISHED and article.published_at is None:
        article.published_at = timezone.now()
    if article.expires_at is not None and article.published_at is not None and article.expires_at <= article.published_at:
        raise ServiceError("expires_at must be after published_at (an article cannot be taken down before it goes live)")


def _slug_taken(slug: str) -> ServiceError:
    return ServiceError(f"an article with slug {slug!r} already exists")


@transaction.atomic
def article_create(
    *,
    author: Author,
    category: Category,
    title: str,
    slug: str = "",
    excerpt: str = "",
    body: str = "",
    status: str = Article.Status.DRAFT,
    published_at=None,
    expires_at=None,
    is_breaking: bool = False,
    hero_image_url: str = "",
    hero_image=None,
    by=None,
) -> Article:
    """A new article (its first revision, by `by`)."""
    article = Article(
        author=author,
        category=category,
        title=title,
        slug=slug or unique_article_slug(title),
        excerpt=excerpt,
        body=body,
        status=status,
        published_at=published_at,
        expires_at=expires_at,
        is_breaking=is_breaking,
        hero_image_url=hero_image_url,
        **_hero_columns(hero_image),
    )
    return _save_article(article, by=by)


@transaction.atomic
def article_update(*, article: Article, data: dict[str, Any], if_match: str | None = None,
                   expected_version: int | None = None, by=None, reason: str | None = None) -> Article:
    """Apply `data` (a subset of ARTICLE_EDITABLE_FIELDS) to the article's row as committed,
    locked (SELECT ... FOR UPDATE: concurrent edits apply one after the other, each on the
    latest row, and only `data`'s fields and the version are written), and save: version + 1.

    `if_match`: an If-Match header: StaleEdit unless it names the article's editorial ETag at its
    current version, the current public detail's ETag, or `*` (_refuse_stale_if_match).
    `expected_version`: StaleEdit unless the row is still at that version (the admin form's). One
    more query with an If-Match naming the detail's ETag (the detail, for its ETag). The revision it makes is
    by `by` (a user) with `reason`. Returns `article`, set to the saved row."""
    _refuse_unknown_fields(data, ARTICLE_EDITABLE_FIELDS)
    if "hero_image" in data:  # stored before the row is locked: encoding takes a while
        data = {**{k: v for k, v in data.items() if k != "hero_image"}, **_hero_columns(data["hero_image"])}
    current = Article.objects.select_for_update().get(pk=article.pk)
    if expected_version is not None and current.version != expected_version:
        raise StaleEdit(f"the article changed since version {expected_version} (now {current.version}): reload it")
    if if_match is not None:
        _refuse_stale_if_match(current, if_match)
    _ensure_baseline(current)
    if "status" in data and data["status"] != current.status:
        current.preview_epoch += 1  # share links made before a change of status stop working
    for field, value in data.items():
        setattr(current, field, value)
    _save_article(current, update_fields=_EDIT_COLUMNS | {"preview_epoch"}, by=by, reason=reason)
    for column in Article._meta.concrete_fields:  # the caller's object shows what was saved
        setattr(article, column.attname, getattr(current, column.attname))
    return article


def _refuse_stale_if_match(current: Article, if_match: str) -> None:
    """StaleEdit unless `if_match` (an If-Match header, checked against the locked row `current`)
    names the article's editorial ETag at its current version (articles.http.editorial_etag: a
    reader's like or comment since does not make it stale), its current public detail's ETag (the
    SPEC's validator; it also changes with the counts and the author's and category's names), or
    `*`. The detail's ETag costs one query, only when the editorial one did not match."""
    if etag_matches(if_match, editorial_etag(current.version)):
        return
    etag = detail_etag(selectors.article_detail_any_state(article_id=current.pk))
    if not etag_matches(if_match, etag):
        raise StaleEdit(f"If-Match names neither the article's version ({editorial_etag(current.version)}) nor its"
                        f" current ETag ({etag}): it changed since you read it, reload it")


def article_with_change(*, article: Article, data: dict[str, Any]) -> Article:
    """The article as article_update(article=article, data=data) would save it, saved nowhere (a
    preview of an unsaved change: articles/preview.py): a copy of `article` with `data` applied
    under the save's rules, its version one up and updated now; a ServiceError for what the save
    would refuse (a field not editable, a take-down before the go-live, a slug another article
    has). A new picture is not previewed here (it would be stored first: the admin's form
    previews one). Writes nothing; one query when `data` names a slug."""
    _refuse_unknown_fields(data, ARTICLE_EDITABLE_FIELDS - {"hero_image"})
    changed = copy.copy(article)
    for field, value in data.items():
        setattr(changed, field, value)
    _save_rules(changed)
    if "slug" in data and Article.objects.filter(slug=changed.slug).exclude(pk=article.pk).exists():
        raise _slug_taken(changed.slug)
    changed.version = (article.version or 0) + 1  # as Article.save
    changed.updated_at = timezone.now()  # auto_now
    return changed


def _ensure_baseline(current: Article) -> None:
    """An article written without a revision (before revisions were kept, or by a raw or bulk
    insert: seed_demo's COPY) gets one of its state as it is, before its first recorded change,
    so that state can be seen and reverted to. One EXISTS query per edit."""
    if not Article.history.filter(id=current.pk).exists():
        Article.history.bulk_history_create([current], default_date=current.updated_at,
                                            default_change_reason="As it was before revisions were kept")


def article_revoke_previews(*, article: Article) -> None:
    """Every preview share link of the article made so far stops working (no new version: the
    article's content is unchanged)."""
    Article.objects.filter(pk=article.pk).update(preview_epoch=F("preview_epoch") + 1)


@transaction.atomic
def article_revert(*, article: Article, revision_id: int, by=None, if_match: str | None = None,
                   expected_version: int | None = None) -> Article:
    """Back to an earlier revision's editable fields: an ordinary edit (under the row's lock,
    version + 1, a new revision saying what it reverted to, invalidation and purge as any edit;
    `if_match` and `expected_version` as for article_update). ServiceError when the revision is
    not the article's, or names an author or category that no longer exists, or a slug another
    article took since."""
    try:
        revision = article.history.get(history_id=revision_id)
    except Article.history.model.DoesNotExist as exc:
        raise ServiceError(f"no revision {revision_id} of this article") from exc
    old = revision.instance
    try:
        data = {name: getattr(old, name) for name in ARTICLE_EDITABLE_FIELDS}
    except (Author.DoesNotExist, Category.DoesNotExist) as exc:
        raise ServiceError(f"revision {revision_id} names an author or category that no longer exists") from exc
    # The revision's picture as it was stored (its files are never deleted): nothing re-encoded.
    data["hero_image"] = old.hero_image and images.StoredHero(name=old.hero_image.name, renditions=old.hero_renditions)
    when = timezone.localtime(revision.history_date).strftime("%Y-%m-%d %H:%M")
    return article_update(article=article, data=data, by=by, if_match=if_match, expected_version=expected_version,
                          reason=f"Reverted to revision {revision_id} (version {old.version}, {when})")


CORRECTION_MAX_LENGTH = 2000


@transaction.atomic
def correction_add(*, article: Article, note: str, by=None) -> Article:
    """Publish a correction on the article: appended to its corrections (what the page, the JSON
    and the JSON-LD show) and saved as an edit: version + 1, updated_at now (the feeds show the
    item updated, JSON-LD's dateModified), a revision with the note as its reason, and the
    invalidation of any edit. Returns `article`, set to the saved row."""
    note = (note or "").strip()
    if not note:
        raise ServiceError("a correction needs a note")
    if len(note) > CORRECTION_MAX_LENGTH:
        raise ServiceError(f"a correction note has at most {CORRECTION_MAX_LENGTH} characters")
    try:
        no_control_characters(note)
    except ValidationError as exc:
        raise ServiceError("control characters are not allowed in a correction") from exc
    current = Article.objects.select_for_update().get(pk=article.pk)
    if current.visibility() is not Visibility.LIVE:
        raise ServiceError("corrections are published on a live article (edit a draft or a scheduled story instead)")
    _ensure_baseline(current)
    current.corrections = [*current.corrections, {"note": note, "published_at": timezone.now().isoformat()}]
    _save_article(current, update_fields={"corrections"}, by=by, reason=f"Correction: {note[:80]}")
    for column in Article._meta.concrete_fields:
        setattr(article, column.attname, getattr(current, column.attname))
    return article


def article_publish(*, article: Article, by=None) -> Article:
    return article_update(article=article, data={"status": Article.Status.PUBLISHED}, by=by)


def article_publish_now(*, article: Article, by=None) -> Article:
    """Published from now on: a draft or a scheduled article goes live at once (published_at now,
    a take-down time already past is cleared)."""
    now = timezone.now()
    data = {"status": Article.Status.PUBLISHED, "published_at": now}
    if article.expires_at is not None and article.expires_at <= now:
        data["expires_at"] = None
    return article_update(article=article, data=data, by=by)


def article_unpublish(*, article: Article, by=None) -> Article:
    return article_update(article=article, data={"status": Article.Status.DRAFT}, by=by)


@transaction.atomic
def article_delete(*, article: Article, if_match: str | None = None, by=None) -> None:
    """Delete the article (its last revision says by whom); with `if_match` (an If-Match header)
    only if it names the article's current version or public detail's ETag (StaleEdit otherwise:
    _refuse_stale_if_match), checked under the row's lock."""
    current = Article.objects.select_for_update().get(pk=article.pk)  # DoesNotExist: deleted meanwhile
    if if_match is not None:
        _refuse_stale_if_match(current, if_match)
    _ensure_baseline(current)
    if by is not None and getattr(by, "is_authenticated", False):
        current._history_user = by
    current.delete()  # the row as committed: its receivers invalidate its current slug and lists


@transaction.atomic
def comment_create(*, article: Article, user: AbstractBaseUser, body: str) -> Comment:
    return Comment.objects.create(article=article, user=user, body=body)


@transaction.atomic
def like_create(*, article: Article, user: AbstractBaseUser) -> tuple[Like, bool]:
    """Like once; liking again is a no-op. Returns (like, created)."""
    return Like.objects.get_or_create(article=article, user=user)


@transaction.atomic
def like_delete(*, article: Article, user: AbstractBaseUser) -> bool:
    like = Like.objects.filter(article=article, user=user).first()
    if like is None:
        return False
    like.delete()  # per object, so post_delete receivers run
    return True


@transaction.atomic
def follow_create(
    *, user: AbstractBaseUser, author: Author | None = None, category: Category | None = None
) -> tuple[Follow, bool]:
    if (author is None) == (category is None):
        raise ServiceError("follow exactly one of an author or a category")
    return Follow.objects.get_or_create(user=user, author=author, category=category)


@transaction.atomic
def follow_delete(*, user: AbstractBaseUser, author: Author | None = None, category: Category | None = None) -> bool:
    if (author is None) == (category is None):
        raise ServiceError("unfollow exactly one of an author or a category")
    follow = Follow.objects.filter(user=user, author=author, category=category).first()
    if follow is None:
        return False
    follow.delete()
    return True


PROFILE_EDITABLE_FIELDS = frozenset({"first_name", "last_name", "email"})


@transaction.atomic
def profile_update(*, user: AbstractBaseUser, data: dict[str, Any]) -> AbstractBaseUser:
    """Apply `data` (a subset of PROFILE_EDITABLE_FIELDS) to the user, then write the cached
    profile through after commit."""
    _refuse_unknown_fields(data, PROFILE_EDITABLE_FIELDS)
    for field, value in data.items():
        setattr(user, field, value)
    user.save(update_fields=list(data) or None)
    # Write-through: after commit, drop the old profile everywhere, then store the new one.
    invalidation.user_changed(user_id=user.pk)
    transaction.on_commit(lambda: selectors.user_profile_cached(user=user))
    return user


def article_register_view(*, article_id: int, client: str = "") -> bool:
    """Count one read, write-behind: one Redis round trip, no transaction (articles/counters.py:
    once per client and article within VIEW_DEDUPE_SECONDS; counted in the process while Redis
    is unavailable). Returns whether it counted."""
    return counters.record_view(article_id=article_id, client=client)
