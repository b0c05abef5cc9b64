"""The quotes app's cache vocabulary: every key and tag of the app is built here.

The library brings the mechanism (tiers, tags, invalidation); the app names what it caches and
what each value depends on, next to the writes that change it (quotes/services.py).
"""

QUOTES_TAG = "quotes"  # every list of quotes


def quote_key(quote_id: int) -> str:
    """The key of one quote's data; "quote" (before the colon) is its metrics label."""
    return f"quote:{int(quote_id)}"


def quote_tag(quote_id: int) -> str:
    """What depends on one quote: its data, its page, its cached 404 before it exists."""
    return f"quote:{int(quote_id)}"
