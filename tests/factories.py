"""Tiny object builders for tests (plain functions: no factory library needed)."""

import itertools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from articles.models import Article, Author, Category

_seq = itertools.count(1)


def make_user(*, username: str | None = None, staff: bool = False, password: str = "pw-12345!"):
    n = next(_seq)
    user = get_user_model().objects.create_user(
        username=username or f"user{n}", password=password, email=f"user{n}@example.com", is_staff=staff
    )
    return user


EDITOR_PERMISSIONS = ("add_article", "change_article", "delete_article")


def make_editor(*, username: str | None = None, purge: bool = False, **kwargs):
    """A staff user holding the articles model permissions the editorial API checks
    (articles/permissions): staff alone gets 403. `purge`: also articles.purge_cache."""
    from django.contrib.auth.models import Permission

    user = make_user(username=username, staff=True, **kwargs)
    codenames = EDITOR_PERMISSIONS + (("purge_cache",) if purge else ())
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="articles", codename__in=codenames))
    return user


def make_author(*, name: str | None = None, user=None) -> Author:
    n = next(_seq)
    user = user or make_user(username=f"author{n}")
    return Author.objects.create(user=user, name=name or f"Author {n}", bio="Writes things.", avatar_url=f"https://img.example.com/a{n}.png")


def make_category(*, name: str | None = None) -> Category:
    n = next(_seq)
    name = name or f"Category {n}"
    return Category.objects.create(name=name, slug=name.lower().replace(" ", "-"))


def make_article(*, author=None, category=None, title: str | None = None, published: bool = True, ago: timedelta = timedelta(hours=1), **extra) -> Article:
    n = next(_seq)
    title = title or f"Headline number {n}"
    return Article.objects.create(
        author=author or make_author(),
        category=category or make_category(),
        title=title,
        slug=f"headline-{n}",
        excerpt=f"Excerpt {n}",
        body=f"Body of article {n}.",
        status=Article.Status.PUBLISHED if published else Article.Status.DRAFT,
        published_at=timezone.now() - ago if published else None,
        **extra,
    )
