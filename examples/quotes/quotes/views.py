import time

from caching.http import cache_public, request_params, set_cache_tags
from caching.params import IntParam, ParamError
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_page

from quotes.cache import QUOTES_TAG, quote_tag
from quotes.selectors import quote_data, quote_list_data


def _quote_not_found(request):
    return JsonResponse({"error": "not found"}, status=404)


# Served by caching.middleware.PublicResponseCacheMiddleware: a hit runs neither the view nor a
# query. A 404 is cached too, tagged so that creating the quote removes it.
@cache_public(kind="quote", negative_tags=lambda kwargs: [quote_tag(kwargs["quote_id"])],
              not_found=_quote_not_found)
def quote_detail(request, quote_id):
    data = quote_data(quote_id)
    if data is None:
        raise Http404
    return set_cache_tags(JsonResponse(data), [quote_tag(quote_id)], last_modified=data["updated_at"])


# Only the declared parameters enter the key (?limit=01 and ?limit=1&utm_source=x share it).
@cache_public(kind="quote_list", params=(IntParam("limit", minimum=1, maximum=50, default=10),))
def quote_list(request):
    try:
        limit = request_params(request, quote_list)["limit"]
    except ParamError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return set_cache_tags(JsonResponse({"quotes": quote_list_data(limit=limit)}), [QUOTES_TAG])


# Django's own cache_page, on the TieredCache backend (CACHES["pages"]): no tags, a TTL.
@cache_page(60, cache="pages")
def colophon(request):
    return HttpResponse(f"Quotes, rendered at {time.time():.6f}\n", content_type="text/plain")
