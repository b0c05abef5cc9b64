"""HTML pages: the same data as their JSON twins, rendered with templates that carry nothing
user-specific (no CSRF token, no user name), so they can be shared by every reader. Their tags
come from the same builders as their twins' (articles/invalidation.py, read side)."""

from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_safe

from caching.http import cache_public, request_params, set_cache_tags
from caching.params import ParamError

from . import invalidation as contract
from . import selectors
from .http import page_not_found
from .params import MAX_PAGE, PAGE_PARAMS


def cache_public_page(**policy):
    """A public HTML page (caching.http.cache_public) whose cached 404 is the HTML 404 page."""
    return cache_public(not_found=page_not_found, **policy)


def _page_param(request, view) -> int | None:
    """`page`, declared once in the view's @cache_public_page; None when the value is bad."""
    try:
        return request_params(request, view)["page"]
    except ParamError:
        return None


def _bad_page() -> HttpResponseBadRequest:
    return HttpResponseBadRequest(f"page must be a whole number from 1 to {MAX_PAGE}", content_type="text/plain")


@cache_public_page(kind="homepage_feed", params=PAGE_PARAMS)
@require_safe
def home_page(request):
    page = _page_param(request, home_page)
    if page is None:
        return _bad_page()
    feed, breaking = selectors.home_feed(page=page), selectors.breaking_news()
    context = {"feed": feed, "breaking": breaking["results"], "categories": selectors.category_list()["results"]}
    response = render(request, "articles/home.html", context)
    return set_cache_tags(
        response, contract.home_page_tags(feed, breaking), last_modified=selectors.last_modified_of(feed["results"])
    )


@cache_public_page(kind="article", negative_tags=contract.missing_article_page_tags)
@require_safe
def article_page(request, slug: str):
    article = selectors.article_detail_by_slug(slug=slug)
    if article is None:
        raise Http404("no such article")
    context = {
        "article": article,
        "comments": selectors.article_comments(article_id=article["id"]),
        "categories": selectors.category_list()["results"],
    }
    response = render(request, "articles/article.html", context)
    return set_cache_tags(response, contract.article_page_tags(article), last_modified=article["updated_at"])


@cache_public_page(kind="category_feed", params=PAGE_PARAMS, negative_tags=contract.missing_category_tags)
@require_safe
def category_page(request, slug: str):
    page = _page_param(request, category_page)
    if page is None:
        return _bad_page()
    feed = selectors.category_feed(slug=slug, page=page)
    if feed is None:
        raise Http404("no such category")
    context = {"feed": feed, "category": feed["category"], "categories": selectors.category_list()["results"]}
    response = render(request, "articles/category.html", context)
    return set_cache_tags(response, contract.category_page_tags(feed), last_modified=selectors.last_modified_of(feed["results"]))
