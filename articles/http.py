"""Small response helpers shared by the API and page views."""

import re

import orjson
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import patch_cache_control
from django.utils.http import parse_etags

from caching.http import strong_etag

from .models import CONTROL_CHARACTERS

JSON_CONTENT_TYPE = "application/json"
_NOT_XML = re.compile(CONTROL_CHARACTERS)
_NOT_FOUND_JSON = b'{"error":"not_found","detail":"Not found."}'


def json_bytes(data) -> bytes:
    return orjson.dumps(data)


def json_response(data, *, status: int = 200) -> HttpResponse:
    """Plain data -> JSON response, serialised once with orjson (no DRF renderer on reads)."""
    return HttpResponse(json_bytes(data), status=status, content_type=JSON_CONTENT_TYPE)


def personal(response: HttpResponse) -> HttpResponse:
    """Mark a response as personal: never stored by a shared cache, never tagged."""
    patch_cache_control(response, private=True, no_store=True)
    for header in ("Surrogate-Key", "Cache-Tag"):
        if header in response:
            del response[header]
    return response


def json_not_found(request=None) -> HttpResponse:
    """The API's 404 ({"error": "not_found", ...}, as articles.errors shapes it), also the body
    of a cached negative of a public JSON view."""
    return HttpResponse(_NOT_FOUND_JSON, status=404, content_type=JSON_CONTENT_TYPE)


def page_not_found(request=None) -> HttpResponse:
    """The HTML 404 page of a public page view, rendered without the request: the same bytes
    for every reader (it is served from a cached negative)."""
    return HttpResponse(render_to_string("articles/404.html"), status=404)


def detail_etag(data: dict) -> str:
    """The ETag of the public JSON detail showing `data` (api.article_detail_response's body)."""
    return strong_etag(json_bytes(data))


def editorial_etag(version: int) -> str:
    """The validator of an article's editorial state: its version, which every save of the
    article increments and nothing else does (a like, a comment, a view, a rename of its author
    or category changes the detail's ETag, not this). What the editorial answers carry as
    "etag" and an If-Match may name instead of the detail's ETag (issue 28.4)."""
    return f'"v{version}"'


def etag_matches(if_match: str, etag: str) -> bool:
    """RFC 9110 If-Match: a strong comparison against one of the listed ETags, or `*`."""
    candidates = parse_etags(if_match)
    return "*" in candidates or etag in candidates


def xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot hold (article writes refuse them; rows written
    past the API, by the ORM or SQL, and other models' names must not make a feed a 500 or a
    sitemap invalid XML)."""
    return _NOT_XML.sub("", text)
