"""The newsite domain: authors, categories, articles and what readers do with them."""

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q


class Author(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="author")
    name = models.CharField(max_length=120)
    bio = models.TextField(blank=True)
    avatar_url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Category(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    excerpt = models.TextField(blank=True)
    body = models.TextField(blank=True)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="articles")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="articles")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    is_breaking = models.BooleanField(default=False)
    hero_image_url = models.URLField(blank=True)
    view_count = models.PositiveBigIntegerField(default=0)
    version = models.PositiveIntegerField(default=0, editable=False)
    # Maintained by a PostgreSQL trigger (migration 0002); NULL on SQLite, where search falls
    # back to icontains.
    search_vector = SearchVectorField(null=True, editable=False)

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

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED


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
