"""The query parameters of the public endpoints (parsed by caching.params on every request)."""

from caching.params import IntParam, StrParam

# Bounded work per uncached read (issue 28.3): a feed page is an OFFSET scan, so the deepest
# page is 250 (the 5,000 newest articles of a feed, ~10 ms on 50,000 articles; page 2,500 took
# 75 ms). Older articles stay reachable by search, the sitemaps and their own URLs. Search ranks
# at most the SEARCH_MAX_PAGE * 20 newest matches (articles.selectors.search).
MAX_PAGE = 250
SEARCH_MAX_PAGE = 50
MAX_QUERY_LENGTH = 200

PAGE = IntParam("page", minimum=1, maximum=MAX_PAGE, default=1)
SEARCH_PAGE = IntParam("page", minimum=1, maximum=SEARCH_MAX_PAGE, default=1)
QUERY = StrParam("q", min_length=1, max_length=MAX_QUERY_LENGTH)

PAGE_PARAMS = (PAGE,)
SEARCH_PARAMS = (QUERY, SEARCH_PAGE)
