"""HTML pages: the same data as their JSON twins, rendered with templates that carry nothing
user-specific (no CSRF token, no user name), so they can be shared by every reader. Their tags
come from the same builders as their twins' (articles/invalidation.py, read side).

What a reader, a crawler and a link preview need is built here, from the selectors' data: the
canonical URL and every other absolute URL from settings.SITE_URL (never the request's Host: the
bytes are shared by every reader), the meta description, OpenGraph/Twitter tags and JSON-LD
`NewsArticle` of an article, prev/next links of a paged list, the feeds to discover, and dates as
datetimes so the templates show them in the site's time zone (settings.TIME_ZONE)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.views.decorators.http import require_safe

from caching.http import cache_public, request_params, set_cache_tags
from caching.params import ParamError
from newsite import throttle

from . import images, preview, selectors
from . import invalidation as contract
from .http import page_not_found
from .params import MAX_PAGE, PAGE_PARAMS

# Hero images are drawn 16:9; the attributes reserve the box before the image arrives (no layout
# shift), CSS scales it to the column. The placeholder stands in for an article without one.
HERO_WIDTH, HERO_HEIGHT = 1200, 675
HERO_PLACEHOLDER = "articles/hero-placeholder.jpg"
# A list item's thumbnail is drawn this wide (CSS px; its 400 px rendition serves up to 3x
# screens), the first EAGER_THUMBNAILS of a list eagerly (above the fold at 390 and 1280 px), the
# rest lazily (articles/templates/articles/_summary.html).
THUMBNAIL_WIDTH = 128
DESCRIPTION_LENGTH = 160
# An article saved this long after its publication shows "updated" (publishing itself saves).
EDITED_AFTER = timedelta(minutes=5)
# The breaking box polls /api/breaking-news/ this often (articles/static/articles/breaking-box.js,
# docs/breaking-box.md): a publish reaches an open page within it plus the edge's purge.
BREAKING_POLL_SECONDS = 10
# json.dumps output made safe inside <script>: as django.utils.html.json_script escapes it.
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def cache_public_page(**policy):
    """A public HTML page (caching.http.cache_public) whose cached 404 is the HTML 404 page."""
    return cache_public(not_found=page_not_found, **policy)


def absolute_url(path: str) -> str:
    """`path` on the site's public origin (settings.SITE_URL); absolute URLs pass through."""
    if path.startswith(("http://", "https://")):
        return path
    return settings.SITE_URL + path


def _page_param(request, view) -> int | None:
    """`page`, declared once in the view's @cache_public_page; None when the value is bad."""
    try:
        return request_params(request, view)["page"]
    except ParamError:
        return None


def _bad_page() -> HttpResponseBadRequest:
    return HttpResponseBadRequest(f"page must be a whole number from 1 to {MAX_PAGE}", content_type="text/plain")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def dated(item: dict) -> dict:
    """A summary or detail with `published` and `updated` datetimes for the templates (`updated`
    only when the article was saved EDITED_AFTER past its publication)."""
    published, updated = _when(item.get("published_at")), _when(item.get("updated_at"))
    edited = published is not None and updated is not None and updated - published > EDITED_AFTER
    out = {**item, "published": published, "updated": updated if edited else None}
    if item.get("corrections"):
        out["corrections"] = [{**c, "published": _when(c["published_at"])} for c in item["corrections"]]
    return out


def _paged_url(path: str, page: int | None) -> str | None:
    if page is None:
        return None
    return path if page == 1 else f"{path}?page={page}"


def thumbnail(item: dict) -> dict | None:
    """What a list draws beside an item (articles/templates/articles/_picture.html): its
    `thumbnail` renditions (WebP, JPEG fallback) in a THUMBNAIL_WIDTH box of the picture's own
    ratio; None for an article without an uploaded picture."""
    thumb = item.get("thumbnail")
    if not thumb:
        return None
    return {"src": images.page_url(thumb["src"]), "width": THUMBNAIL_WIDTH,
            "height": round(THUMBNAIL_WIDTH * thumb["height"] / thumb["width"]),
            "webp_srcset": images.srcset(thumb, "image/webp"), "jpeg_srcset": images.srcset(thumb, "image/jpeg"),
            "sizes": f"{THUMBNAIL_WIDTH}px"}


def _list_context(feed: dict, path: str, feeds: list[tuple[str, str, str]]) -> dict:
    """What a paged list shows besides its items: canonical, prev/next and the feeds to discover."""
    return {
        "feed": {**feed, "results": [{**dated(i), "thumb": thumbnail(i)} for i in feed["results"]]},
        "canonical": absolute_url(_paged_url(path, feed["page"])),
        "prev_url": _paged_url(path, feed["previous"]),
        "next_url": _paged_url(path, feed["next"]),
        "alternates": _alternates(feeds),
        "site_name": settings.SITE_NAME,
        "categories": selectors.category_list()["results"],
    }


def _alternates(feeds: list[tuple[str, str, str]]) -> list[dict]:
    """<link rel="alternate"> entries of (title, RSS url, Atom url) triples, in that order."""
    links = []
    for title, rss, atom in feeds:
        links.append({"type": "application/rss+xml", "title": f"{title} (RSS)", "href": rss})
        links.append({"type": "application/atom+xml", "title": f"{title} (Atom)", "href": atom})
    return links


def _site_feeds() -> tuple[str, str, str]:
    return settings.SITE_NAME, reverse("feed-home"), reverse("feed-home-atom")


def _category_feeds(category: dict) -> tuple[str, str, str]:
    slug = {"slug": category["slug"]}
    return category["name"], reverse("feed-category", kwargs=slug), reverse("feed-category-atom", kwargs=slug)


def hero_image(article: dict) -> dict:
    """What the page draws at the top: an uploaded image's renditions as `srcset`s (WebP, JPEG
    fallback) for `sizes`, its src and box from the middle JPEG, linked root-relative; else the
    stored URL or the local placeholder in the 16:9 box. `absolute`, `og_width`, `og_height`:
    the image OpenGraph and JSON-LD name (the largest JPEG: every preview service reads JPEG)."""
    uploaded = article.get("hero_image")
    if uploaded:
        jpegs = sorted((r for r in uploaded["renditions"] if r["type"] == "image/jpeg"), key=lambda r: r["width"])
        middle = jpegs[len(jpegs) // 2]
        return {"src": images.page_url(middle["url"]), "width": middle["width"], "height": middle["height"],
                "webp_srcset": images.srcset(uploaded, "image/webp"), "jpeg_srcset": images.srcset(uploaded, "image/jpeg"),
                "sizes": images.SIZES, "absolute": uploaded["src"], "og_width": uploaded["width"],
                "og_height": uploaded["height"]}
    src = article.get("hero_image_url") or static(HERO_PLACEHOLDER)
    return {"src": src, "absolute": absolute_url(src), "width": HERO_WIDTH, "height": HERO_HEIGHT,
            "og_width": HERO_WIDTH, "og_height": HERO_HEIGHT}


def news_article_json_ld(article: dict, *, canonical: str, image: str) -> str:
    """schema.org NewsArticle of an article, as JSON safe inside <script>."""
    data = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": Truncator(article["title"]).chars(110),
        "description": article["excerpt"],
        "image": [image],
        "datePublished": article["published_at"],
        "dateModified": article["updated_at"],
        "articleSection": article["category"]["name"],
        "author": [{"@type": "Person", "name": article["author"]["name"]}],
        "publisher": {"@type": "Organization", "name": settings.SITE_NAME, "url": absolute_url("/")},
        "mainEntityOfPage": canonical,
        "url": canonical,
    }
    if article.get("corrections"):
        data["correction"] = [{"@type": "CorrectionComment", "text": c["note"], "datePublished": c["published_at"]}
                              for c in article["corrections"]]
    return mark_safe(json.dumps(data, ensure_ascii=False).translate(_SCRIPT_ESCAPES))  # noqa: S308 (escaped)


@cache_public_page(kind="homepage_feed", params=PAGE_PARAMS)
@require_safe
def home_page(request):
    page = _page_param(request, home_page)
    if page is None:
        return _bad_page()
    feed, breaking = selectors.home_feed(page=page), selectors.breaking_news()
    context = {
        **_list_context(feed, reverse("home"), [_site_feeds()]),
        "breaking": breaking["results"],
        "breaking_every": BREAKING_POLL_SECONDS,
        "description": f"The latest news from {settings.SITE_NAME}.",
    }
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
    response = render_article(request, article)
    return set_cache_tags(response, contract.article_page_tags(article), last_modified=article["updated_at"])


def render_article(request, article: dict, *, preview: bool = False) -> HttpResponse:
    """The article page of a public detail (the public view, and previews: articles/preview.py)."""
    canonical = absolute_url(reverse("article", kwargs={"slug": article["slug"]}))
    image = hero_image(article)
    category = article["category"]
    context = {
        "article": dated(article),
        "comments": selectors.article_comments(article_id=article["id"]) if article.get("id") else [],
        "categories": selectors.category_list()["results"],
        "site_name": settings.SITE_NAME,
        "canonical": canonical,
        "description": Truncator(article["excerpt"] or article["body"]).chars(DESCRIPTION_LENGTH),
        "hero": image,
        "json_ld": news_article_json_ld(article, canonical=canonical, image=image["absolute"]),
        "alternates": _alternates([_site_feeds(), _category_feeds(category)]),
        "preview": preview,
        "breaking_every": BREAKING_POLL_SECONDS,
    }
    return render(request, "articles/article.html", context)


@require_safe
def preview_page(request, token: str):
    """A share link's page (articles/preview.py): the article as it will be, never cached."""
    try:
        article = preview.article_of(token)
    except preview.LinkEnded as exc:
        return preview.personal(HttpResponse(f"{exc}.", status=404, content_type="text/plain"))
    _, retry_after = throttle.charge(request, throttle.PUBLIC_MISS)  # uncached work: the client's budget
    if retry_after is not None:  # a preview's refusal is personal too
        return preview.personal(
            throttle.too_many_requests(retry_after, "Too many uncached reads from this client; try again later."))
    return preview.personal(render_article(request, preview.detail(article), preview=True))


@cache_public_page(kind="category_feed", params=PAGE_PARAMS, negative_tags=contract.missing_category_tags)
@require_safe
def category_page(request, slug: str):
    page = _page_param(request, category_page)
    if page is None:
        return _bad_page()
    feed = selectors.category_feed(slug=slug, page=page)
    if feed is None:
        raise Http404("no such category")
    category = feed["category"]
    context = {
        **_list_context(feed, reverse("category", kwargs={"slug": slug}), [_category_feeds(category), _site_feeds()]),
        "category": category,
        "description": f"The latest {category['name']} news from {settings.SITE_NAME}.",
    }
    response = render(request, "articles/category.html", context)
    return set_cache_tags(response, contract.category_page_tags(feed), last_modified=selectors.last_modified_of(feed["results"]))
