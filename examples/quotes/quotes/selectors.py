import caching

from quotes.cache import quote_key, quote_tag
from quotes.models import Quote


def quote_data(quote_id: int) -> dict | None:
    """The quote as a dict, or None when there is none (cached too: a miss and a cached None
    differ). An L1 hit costs no query and no Redis command; a cold key one query."""

    def load():
        quote = Quote.objects.filter(pk=quote_id).first()
        if quote is None:
            return None
        return {"id": quote.pk, "text": quote.text, "author": quote.author,
                "updated_at": quote.updated_at.isoformat()}

    return caching.fetch(quote_key(quote_id), load, kind="quote", tags=[quote_tag(quote_id)]).value


def quote_list_data(*, limit: int) -> list[dict]:
    return list(Quote.objects.order_by("-id").values("id", "text", "author")[:limit])
