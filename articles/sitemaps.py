"""Sitemaps (django.contrib.sitemaps) and robots.txt.

- /sitemap.xml: the sitemap index, one entry per page of each section.
- /sitemap-pages.xml: the front page and the category pages.
- /sitemap-articles.xml?p=N: every published article, oldest first, SITEMAP_PAGE_SIZE a page.
- /sitemap-news.xml?p=N: the Google News sitemap, articles published in the last 48 hours.
- /robots.txt: points crawlers at the index and the news sitemap.

The sections are django.contrib.sitemaps.Sitemap classes (paging, <loc>/<lastmod>, Django's
templates); the views are our own rather than django.contrib.sitemaps.views because those build
every URL from the request's Host, and these responses are cached and shared: here every URL is
absolute on settings.SITE_URL. Each view is a public view of the response cache with its tags
(articles/invalidation.py): membership is `articles` (and `categories`), each listed article
adds `article:{id}` (its slug, lastmod and title are on the page).
"""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.sitemaps import Sitemap
from django.core.paginator import EmptyPage
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_safe

from caching.http import request_params, set_cache_tags
from caching.params import IntParam, ParamError

from . import invalidation as contract
from . import selectors
from .http import xml_text
from .pages import cache_public_page

# Each listed article puts `article:{id}` (~15 bytes) into Surrogate-Key and Cache-Tag: 200 rows
# keep each header near 3 KB, well under Varnish's 8 KB header line (http_resp_hdr_len).
SITEMAP_PAGE_SIZE = 200
MAX_SITEMAP_PAGE = 10_000
SITEMAP_PARAMS = (IntParam("p", minimum=1, maximum=MAX_SITEMAP_PAGE, default=1),)
XML = "application/xml; charset=utf-8"


def _site():
    """What Sitemap.get_urls needs of a site (its domain) and the protocol, from SITE_URL."""
    origin = urlsplit(settings.SITE_URL)
    return SimpleNamespace(domain=origin.netloc, name=settings.SITE_NAME), origin.scheme


class PagesSitemap(Sitemap):
    changefreq = "hourly"

    def items(self) -> list[str]:
        categories = selectors.category_list()["results"]
        return [reverse("home"), *(reverse("category", kwargs={"slug": c["slug"]}) for c in categories)]

    def location(self, path: str) -> str:
        return path


class ArticleSitemap(Sitemap):
    limit = SITEMAP_PAGE_SIZE

    def items(self):
        return selectors.sitemap_articles()

    def location(self, row: dict) -> str:
        return reverse("article", kwargs={"slug": row["slug"]})

    def lastmod(self, row: dict):
        return row["updated_at"]


class NewsSitemap(ArticleSitemap):
    def items(self):
        return selectors.news_sitemap_articles()


SECTIONS = {"pages": PagesSitemap, "articles": ArticleSitemap, "news": NewsSitemap}


def section_url(section: str, page: int = 1) -> str:
    path = settings.SITE_URL + reverse(f"sitemap-{section}")
    return path if page == 1 else f"{path}?p={page}"


def _xml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type=XML)


def _page_of(request, view) -> int | None:
    try:
        return request_params(request, view)["p"]
    except ParamError:
        return None


def _bad_page() -> HttpResponseBadRequest:
    return HttpResponseBadRequest(f"p must be a whole number from 1 to {MAX_SITEMAP_PAGE}", content_type="text/plain")


def _urls(sitemap: Sitemap, page: int) -> list[dict]:
    site, protocol = _site()
    try:
        return sitemap.get_urls(page=page, site=site, protocol=protocol)
    except EmptyPage:
        raise Http404("no such sitemap page") from None


@cache_public_page(kind="sitemap")
@require_safe
def sitemap_index(request):
    """One <sitemap> per page of each section. Costs one COUNT per section."""
    entries = [
        {"location": section_url(name, page)}
        for name, section in SECTIONS.items()
        for page in section().paginator.page_range
    ]
    response = _xml(render_to_string("sitemap_index.xml", {"sitemaps": entries}))
    return set_cache_tags(response, contract.sitemap_index_tags())


@cache_public_page(kind="sitemap", params=SITEMAP_PARAMS, negative_tags=contract.missing_sitemap_page_tags)
@require_safe
def sitemap_pages(request):
    page = _page_of(request, sitemap_pages)
    if page is None:
        return _bad_page()
    urls = _urls(PagesSitemap(), page)
    return set_cache_tags(_xml(render_to_string("sitemap.xml", {"urlset": urls})), contract.sitemap_pages_tags())


def _article_rows(urls: list[dict]) -> list[dict]:
    return [url["item"] for url in urls]


def _xml_safe_titles(urls: list[dict]) -> list[dict]:
    """The news sitemap prints each title: without the characters XML cannot hold."""
    for url in urls:
        url["item"] = {**url["item"], "title": xml_text(url["item"]["title"])}
    return urls


@cache_public_page(kind="sitemap", params=SITEMAP_PARAMS, negative_tags=contract.missing_sitemap_page_tags)
@require_safe
def sitemap_articles(request):
    page = _page_of(request, sitemap_articles)
    if page is None:
        return _bad_page()
    urls = _urls(ArticleSitemap(), page)
    rows = _article_rows(urls)
    response = _xml(render_to_string("sitemap.xml", {"urlset": urls}))
    return set_cache_tags(
        response, contract.sitemap_articles_tags(rows), last_modified=max((r["updated_at"] for r in rows), default=None)
    )


@cache_public_page(kind="news_sitemap", params=SITEMAP_PARAMS, negative_tags=contract.missing_sitemap_page_tags)
@require_safe
def sitemap_news(request):
    """The Google News sitemap: <news:news> with the publication, date and title of each article
    published in the last 48 hours (selectors.NEWS_SITEMAP_WINDOW)."""
    page = _page_of(request, sitemap_news)
    if page is None:
        return _bad_page()
    urls = _xml_safe_titles(_urls(NewsSitemap(), page))
    rows = _article_rows(urls)
    context = {
        "urlset": urls,
        "publication_name": settings.SITE_NAME,
        "publication_language": settings.LANGUAGE_CODE.split("-")[0],
    }
    response = _xml(render_to_string("articles/sitemap_news.xml", context))
    return set_cache_tags(
        response, contract.news_sitemap_tags(rows), last_modified=max((r["updated_at"] for r in rows), default=None)
    )


@cache_public_page(kind="robots")
@require_safe
def robots_txt(request):
    """Depends on no data (only SITE_URL): no tags, a day in every tier."""
    body = render_to_string(
        "articles/robots.txt", {"sitemaps": [section_url("index"), section_url("news")]}
    )
    return set_cache_tags(HttpResponse(body, content_type="text/plain; charset=utf-8"), contract.robots_tags())
