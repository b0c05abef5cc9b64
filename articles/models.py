"""The newsite domain: authors, categories, articles and what readers do with them."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

# C0 controls but tab, newline and carriage return, and DEL: not allowed in XML 1.0 (the feeds and
# sitemaps), never meant in a headline (issue 28.6: a \x0b in a title made /feed/ a 500).
CONTROL_CHARACTERS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
no_control_characters = RegexValidator(CONTROL_CHARACTERS, inverse_match=True,
                                       message="control characters are not allowed", code="control_characters")


class Author(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="author")
    name = models.CharField(max_length=120, validators=[no_control_characters])  # in feeds and pages
    bio = models.TextField(blank=True, validators=[no_control_characters])
    avatar_url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Category(models.Model):
    name = models.CharField(max_length=80, unique=True, validators=[no_control_characters])
    slug = models.SlugField(max_length=80, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name


class Visibility(models.TextChoices):
    """Where an article stands for readers at a given moment (the API's and the admin's `state`)."""

    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"  # published, published_at still ahead
    LIVE = "live", "Live"
    EXPIRED = "expired", "Expired"  # published, expires_at passed: gone as if unpublished


class ArticleQuerySet(models.QuerySet):
    def visible(self, at: datetime | None = None) -> ArticleQuerySet:
        """THE visibility rule, the only one every public read uses: published, published_at
        reached, not taken down (expires_at empty or still ahead) at `at` (default: now)."""
        at = at or timezone.now()
        return self.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at),
            status=Article.Status.PUBLISHED,
            published_at__lte=at,
        )


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    title = models.CharField(max_length=200, validators=[no_control_characters])
    slug = models.SlugField(max_length=220, unique=True)
    excerpt = models.TextField(blank=True, validators=[no_control_characters])
    body = models.TextField(blank=True, validators=[no_control_characters])
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="articles")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="articles")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="When it goes live; a future time with status Published schedules it."
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Optional take-down time: after it the article is gone from every public page."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    is_breaking = models.BooleanField(default=False)
    # An image somewhere else (the API's writable field); an uploaded hero_image takes precedence.
    hero_image_url = models.URLField(blank=True)
    # Uploaded in the admin (articles/images.py): the original's content-addressed storage name,
    # and the renditions made of it ([{"name", "width", "height", "type"}], set with it).
    hero_image = models.ImageField(max_length=255, blank=True, db_default="", help_text=(
        "A JPEG, PNG or WebP picture, at least 640x360 pixels, at most 10 MB; shown 16:9 at the top of the "
        "article, in sizes made once for phones and desktops (WebP with a JPEG fallback)."))
    hero_renditions = models.JSONField(default=list, db_default=[], blank=True, editable=False)
    view_count = models.PositiveBigIntegerField(default=0)
    version = models.PositiveIntegerField(default=0, editable=False)
    # Corrections published on the article, oldest first: [{"note": ..., "published_at": ISO}]
    # (services.correction_add; shown on the page, in the JSON and JSON-LD).
    # A database default too: an INSERT that does not name the column (the previous release's
    # workers during a rolling deploy, a raw COPY) still works.
    corrections = models.JSONField(default=list, db_default=[], blank=True, editable=False)
    # Part of every preview share link (articles/preview.py); bumped at each change of status and
    # by "revoke preview links": the links made before stop working.
    preview_epoch = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    # Maintained by a PostgreSQL trigger (migration 0002); NULL on SQLite, where search falls
    # back to icontains.
    search_vector = SearchVectorField(null=True, editable=False)

    objects = ArticleQuerySet.as_manager()
    # Every save is a revision (django-simple-history: who, when, what changed; the admin's
    # History page shows each change's field diff). Not the trigger-made search vector, nor the
    # read counter (flushed by a plain UPDATE: no revision).
    history = HistoricalRecords(
        excluded_fields=["search_vector", "view_count", "preview_epoch"],
        no_db_index=["slug"],  # no history read looks a slug up; an index would only cost writes
        history_id_field=models.BigAutoField(primary_key=True),
    )

    class Meta:
        ordering = ["-published_at", "-id"]
        permissions = [("purge_cache", "Can purge cached pages and tags from every tier")]
        indexes = [
            # Home feed: newest published first.
            models.Index(
                fields=["-published_at", "-id"],
                name="article_feed_idx",
                condition=Q(status="published"),
            ),
            models.Index(
                fields=["category", "-published_at", "-id"],
                name="article_category_feed_idx",
                condition=Q(status="published"),
            ),
            models.Index(
                fields=["author", "-published_at", "-id"],
                name="article_author_feed_idx",
                condition=Q(status="published"),
            ),
            models.Index(
                fields=["-published_at"],
                name="article_breaking_idx",
                condition=Q(status="published", is_breaking=True),
            ),
            models.Index(
                fields=["-view_count"],
                name="article_views_idx",
                condition=Q(status="published"),
            ),
            # The next take-down (articles/schedule.py, the capped lifetimes of the selectors).
            models.Index(
                fields=["expires_at"],
                name="article_expiry_idx",
                condition=Q(status="published", expires_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(published_at__isnull=True) | Q(expires_at__gt=models.F("published_at")),
                name="article_expires_after_publication",
                violation_error_message="The take-down time (expires at) must be after the go-live time (published at).",
            ),
        ]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        # Every save is a new version: caches compare versions, and ETags derive from them.
        self.version = (self.version or 0) + 1
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "version", "updated_at"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        """The public page ("View on site" in the admin; a 404 until it is live)."""
        return f"/articles/{self.slug}/"

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    def visibility(self, at: datetime | None = None) -> Visibility:
        """The visibility rule of ArticleQuerySet.visible for this object, as a state."""
        if self.status != self.Status.PUBLISHED:
            return Visibility.DRAFT
        at = at or timezone.now()
        if self.published_at is None or self.published_at > at:
            return Visibility.SCHEDULED
        if self.expires_at is not None and self.expires_at <= at:
            return Visibility.EXPIRED
        return Visibility.LIVE


class ScheduleCursor(models.Model):
    """Up to when the scheduled moments (go-lives, take-downs, window edges) have been fired
    (articles/schedule.py): one row, locked by the run that moves it."""

    name = models.CharField(max_length=40, unique=True)
    fired_through = models.DateTimeField()

    def __str__(self):
        return f"{self.name}: fired through {self.fired_through.isoformat()}"


class ViewCountFlush(models.Model):
    """One row per batch of read counts written to PostgreSQL (articles/counters.py): a batch
    whose id is here was applied, so a retried flush never applies it twice."""

    batch_id = models.CharField(max_length=32, unique=True)
    reads = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return f"views batch {self.batch_id} ({self.reads} reads)"


class Comment(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments")
    body = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["article", "-created_at"], name="comment_article_idx")]

    def __str__(self):
        return f"Comment {self.pk} on {self.article_id}"


class Like(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="likes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="likes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["article", "user"], name="like_once_per_user")]
        indexes = [models.Index(fields=["user"], name="like_user_idx")]

    def __str__(self):
        return f"{self.user_id} likes {self.article_id}"


class Follow(models.Model):
    """A reader follows exactly one author or one category."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follows")
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.CASCADE, related_name="followers")
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.CASCADE, related_name="followers"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(author__isnull=False, category__isnull=True) | Q(author__isnull=True, category__isnull=False)),
                name="follow_exactly_one_target",
            ),
            models.UniqueConstraint(
                fields=["user", "author"], condition=Q(author__isnull=False), name="follow_author_once"
            ),
            models.UniqueConstraint(
                fields=["user", "category"], condition=Q(category__isnull=False), name="follow_category_once"
            ),
        ]

    def __str__(self):
        return f"{self.user_id} follows {'author' if self.author_id else 'category'} {self.author_id or self.category_id}"
