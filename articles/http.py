"""Small response helpers shared by the API and page views."""

import orjson
from django.http import HttpResponse
from django.utils.cache import patch_cache_control

JSON_CONTENT_TYPE = "application/json"


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
