import caching
from django.db import transaction

from quotes.cache import QUOTES_TAG, quote_tag
from quotes.models import Quote


def quote_create(*, text: str, author: str) -> Quote:
    with transaction.atomic():
        quote = Quote.objects.create(text=text, author=author)
        # After commit (a rollback invalidates nothing): the lists, and a cached 404 of this id.
        caching.invalidate_tags_on_commit([QUOTES_TAG, quote_tag(quote.pk)])
    return quote


def quote_update(*, quote_id: int, text: str) -> None:
    with transaction.atomic():
        Quote.objects.filter(pk=quote_id).update(text=text)
        caching.invalidate_tags_on_commit([QUOTES_TAG, quote_tag(quote_id)])
