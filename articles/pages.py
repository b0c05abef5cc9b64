"""HTML pages: the same data as their JSON twins, rendered with templates that carry nothing
user-specific (no CSRF token, no user name), so they can be shared by every reader."""

from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_safe

from caching import tags as T
from caching.http import cache_public, set_cache_tags
from caching.params import ParamError, parse_params

from . import selectors
from .params import MAX_PAGE, PAGE_PARAMS


def _page_param(request) -> int | None:
    try:
        return parse_params(PAGE_PARAMS, request.GET)["page"]
    except ParamError:
        return None


def _article_tags(items) -> list[str]:
    return T.article_tags(item["id"] for item in items)


@cache_public(kind="homepage_feed", params=PAGE_PARAMS, html=True)
@require_safe
def home_page(request):
    page = _page_param(request)
    if page is None:
        return HttpResponseBadRequest(f"page must be a whole number from 1 to {MAX_PAGE}", content_type="text/plain")
    context = {
        "feed": selectors.home_feed(page=page),
        "breaking": selectors.breaking_news()["results"],
        "categories": selectors.category_list()["results"],
    }
    tags = [T.articles_tag(), T.home_feed_tag(), T.breaking_tag(), T.categories_tag()]
    tags += _article_tags(context["feed"]["results"] + context["breaking"])
    response = render(request, "articles/home.html", context)
    return set_cache_tags(response, tags, last_modified=selectors.last_modified_of(context["feed"]["results"]))


@cache_public(kind="article", negative_tags=lambda kw: [T.article_slug_tag(kw["slug"])], html=True)
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
    tags = [
        T.article_tag(article["id"]),
        T.article_slug_tag(article["slug"]),
        T.author_tag(article["author"]["id"]),
        T.category_tag(article["category"]["id"]),
        T.categories_tag(),
    ]
    response = render(request, "articles/article.html", context)
    return set_cache_tags(response, tags, last_modified=article["updated_at"])


@cache_public(kind="category_feed", params=PAGE_PARAMS, negative_tags=lambda kw: [T.categories_tag()], html=True)
@require_safe
def category_page(request, slug: str):
    page = _page_param(request)
    if page is None:
        return HttpResponseBadRequest(f"page must be a whole number from 1 to {MAX_PAGE}", content_type="text/plain")
    feed = selectors.category_feed(slug=slug, page=page)
    if feed is None:
        raise Http404("no such category")
    context = {"feed": feed, "category": feed["category"], "categories": selectors.category_list()["results"]}
    cid = feed["category"]["id"]
    tags = [T.category_tag(cid), T.category_feed_tag(cid), T.categories_tag(), T.articles_tag()]
    tags += _article_tags(feed["results"])
    response = render(request, "articles/category.html", context)
    return set_cache_tags(response, tags, last_modified=selectors.last_modified_of(feed["results"]))
