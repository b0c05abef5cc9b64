import pytest
from django.utils import timezone

from articles import services
from articles.models import Article
from tests.factories import make_article, make_author, make_category

pytestmark = pytest.mark.django_db


def test_version_increments_on_every_save():
    article = make_article()
    assert article.version == 1
    services.article_update(article=article, data={"title": "New"})
    services.article_update(article=article, data={"excerpt": "New excerpt"})
    article.refresh_from_db()
    assert article.version == 3


def test_publish_sets_published_at_and_unpublish_keeps_it():
    article = make_article(published=False)
    assert article.published_at is None
    services.article_publish(article=article)
    assert article.status == Article.Status.PUBLISHED and article.published_at <= timezone.now()
    services.article_unpublish(article=article)
    assert article.status == Article.Status.DRAFT


def test_create_makes_unique_slugs():
    author, cat = make_author(), make_category()
    first = services.article_create(author=author, category=cat, title="Same title")
    second = services.article_create(author=author, category=cat, title="Same title")
    assert (first.slug, second.slug) == ("same-title", "same-title-2")


def test_update_refuses_unknown_fields():
    with pytest.raises(services.ServiceError):
        services.article_update(article=make_article(), data={"view_count": 5})


def test_search_vector_is_maintained_by_trigger():
    article = make_article(title="Quantum kittens")
    assert Article.objects.filter(pk=article.pk, search_vector="kitten").exists()
    services.article_update(article=article, data={"title": "Classical puppies"})
    assert not Article.objects.filter(pk=article.pk, search_vector="kitten").exists()
    assert Article.objects.filter(pk=article.pk, search_vector="puppy").exists()
