"""HTML pages: the same data as their JSON twins, rendered with templates that carry nothing
user-specific (no CSRF token, no user name), so they can be shared by every reader."""

from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_safe

from . import selectors
from .serializers import PageParams


def _page_param(request) -> int | None:
    serializer = PageParams(data={"page": request.GET["page"]} if "page" in request.GET else {})
    return serializer.validated_data["page"] if serializer.is_valid() else None


@require_safe
def home_page(request):
    page = _page_param(request)
    if page is None:
        return HttpResponseBadRequest("page must be a whole number from 1 to 5000", content_type="text/plain")
    context = {
        "feed": selectors.home_feed(page=page),
        "breaking": selectors.breaking_news()["results"],
        "categories": selectors.category_list()["results"],
    }
    return render(request, "articles/home.html", context)


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
    return render(request, "articles/article.html", context)


@require_safe
def category_page(request, slug: str):
    page = _page_param(request)
    if page is None:
        return HttpResponseBadRequest("page must be a whole number from 1 to 5000", content_type="text/plain")
    feed = selectors.category_feed(slug=slug, page=page)
    if feed is None:
        raise Http404("no such category")
    context = {"feed": feed, "category": feed["category"], "categories": selectors.category_list()["results"]}
    return render(request, "articles/category.html", context)
