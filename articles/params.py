"""The query parameters of the public endpoints (parsed by caching.params on every request)."""

from caching.params import IntParam, StrParam

MAX_PAGE = 5000
MAX_QUERY_LENGTH = 200

PAGE = IntParam("page", minimum=1, maximum=MAX_PAGE, default=1)
QUERY = StrParam("q", min_length=1, max_length=MAX_QUERY_LENGTH)

PAGE_PARAMS = (PAGE,)
SEARCH_PARAMS = (QUERY, PAGE)
