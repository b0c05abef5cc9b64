"""RSS 2.0 and Atom 1.0 feeds of the home page and of each category (django.contrib.syndication).

A feed shows the first page of its HTML twin's list (selectors.home_feed / category_feed, the
newest PAGE_SIZE published articles) and carries that list's tags (articles/invalidation.py:
`feed:home` or `feed:category:{c}`, `articles` and `article:{id}` per item), so publishing,
unpublishing or editing an item reaches the feed in every tier. Every URL in a feed is absolute on
settings.SITE_URL: the bytes are cached and shared, whatever Host a reader sent.

The feeds are public views of the response cache (kind `feed`): ETag/Last-Modified and the 304s
that polling readers rely on come from the cache middleware, like every public response.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils import feedgenerator
from django.views.decorators.http import require_safe

from caching.http import set_cache_tags

from . import invalidation as contract
from . import selectors
from .http import xml_text
from .pages import absolute_url, cache_public_page

FEED_TTL_MINUTES = 5  # RSS <ttl>: the feed kind's s-maxage (settings.NEWSITE_CACHE_KINDS)
# The <lastBuildDate>/<updated> of a feed with no items. Django's generators say "now", which
# makes every refill a new body (a new ETag, no 304s) although nothing changed.
EMPTY_FEED_DATE = datetime(2000, 1, 1, tzinfo=UTC)


class _StableDate:
    def latest_post_date(self):
        return super().latest_post_date() if self.items else EMPTY_FEED_DATE


class RssFeed(_StableDate, feedgenerator.Rss201rev2Feed):
    pass


class AtomFeed(_StableDate, feedgenerator.Atom1Feed):
    pass


class ArticleFeed(Feed):
    """A feed of article summaries (the selectors' dicts). Subclasses say which list (get_object,
    None when it does not exist), its title and addresses, and its tags."""

    feed_type = RssFeed
    ttl = FEED_TTL_MINUTES
    rss_url_name = atom_url_name = ""

    def __call__(self, request, *args, **kwargs):
        # Feed.__call__ without its Last-Modified header (the cache sets it from the data) and
        # with the list's tags.
        data = self.get_object(request, *args, **kwargs)
        if data is None:
            raise Http404("no such feed")
        feedgen = self.get_feed(data, request)
        response = HttpResponse(content_type=feedgen.content_type)
        feedgen.write(response, "utf-8")
        return set_cache_tags(response, self.tags(data), last_modified=selectors.last_modified_of(data["results"]))

    def tags(self, data: dict) -> list[str]:
        raise NotImplementedError("an ArticleFeed names the tags of its list")

    def url_kwargs(self, data: dict) -> dict:
        return {}

    def feed_url(self, data: dict) -> str:
        name = self.atom_url_name if issubclass(self.feed_type, feedgenerator.Atom1Feed) else self.rss_url_name
        return absolute_url(reverse(name, kwargs=self.url_kwargs(data)))

    def items(self, data: dict) -> list[dict]:
        return data["results"]

    def item_title(self, item: dict) -> str:
        return xml_text(item["title"])

    def item_description(self, item: dict) -> str:
        return xml_text(item["excerpt"])

    def item_link(self, item: dict) -> str:
        return absolute_url(item["url"])

    def item_guid(self, item: dict) -> str:
        # Stable across slug edits (the link follows the slug; the id never changes).
        return absolute_url(reverse("api-article", kwargs={"article_id": item["id"]}))

    item_guid_is_permalink = False

    def item_pubdate(self, item: dict) -> datetime:
        return datetime.fromisoformat(item["published_at"])

    def item_updateddate(self, item: dict) -> datetime:
        return datetime.fromisoformat(item["updated_at"])

    def item_author_name(self, item: dict) -> str:
        return xml_text(item["author"]["name"])

    def item_categories(self, item: dict) -> list[str]:
        return [xml_text(item["category"]["name"])]


class HomeFeed(ArticleFeed):
    rss_url_name, atom_url_name = "feed-home", "feed-home-atom"

    def get_object(self, request):
        return selectors.home_feed(page=1)

    def tags(self, data: dict) -> list[str]:
        return contract.home_syndication_tags(data)

    def title(self, data: dict) -> str:
        return settings.SITE_NAME

    def link(self, data: dict) -> str:
        return absolute_url(reverse("home"))

    def description(self, data: dict) -> str:
        return f"The latest news from {settings.SITE_NAME}."


class CategoryFeed(ArticleFeed):
    rss_url_name, atom_url_name = "feed-category", "feed-category-atom"

    def get_object(self, request, slug: str):
        return selectors.category_feed(slug=slug, page=1)

    def tags(self, data: dict) -> list[str]:
        return contract.category_syndication_tags(data)

    def url_kwargs(self, data: dict) -> dict:
        return {"slug": data["category"]["slug"]}

    def title(self, data: dict) -> str:
        return xml_text(f"{data['category']['name']} — {settings.SITE_NAME}")

    def link(self, data: dict) -> str:
        return absolute_url(reverse("category", kwargs=self.url_kwargs(data)))

    def description(self, data: dict) -> str:
        return xml_text(f"The latest {data['category']['name']} news from {settings.SITE_NAME}.")


class HomeAtomFeed(HomeFeed):
    feed_type = AtomFeed
    subtitle = HomeFeed.description


class CategoryAtomFeed(CategoryFeed):
    feed_type = AtomFeed
    subtitle = CategoryFeed.description


def _public_feed(feed: Feed, **policy):
    return cache_public_page(kind="feed", **policy)(require_safe(feed))


home_rss = _public_feed(HomeFeed())
home_atom = _public_feed(HomeAtomFeed())
category_rss = _public_feed(CategoryFeed(), negative_tags=contract.missing_category_tags)
category_atom = _public_feed(CategoryAtomFeed(), negative_tags=contract.missing_category_tags)
