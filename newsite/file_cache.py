"""How long a browser and the edge may keep a file (static or media): by its name alone.

A name that carries its content's hash (`name.<12 hex>.ext`: Django's manifest storage for static
files, articles/images.py for images) never changes content: FILE_CACHE_FOREVER (a year,
immutable). Anything else: FILE_CACHE_SHORT. Pure: settings imports this module (whitenoise takes
a callable, not a dotted path).
"""

from __future__ import annotations

import re

FOREVER = "public, max-age=31536000, immutable"
SHORT = "public, max-age=60"
# The hash Django's ManifestStaticFilesStorage puts before the extension (12 hex digits).
HASHED_NAME = re.compile(r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$")


def is_hashed(name: str) -> bool:
    """True when `name` (a path or URL, no query string) carries a content hash."""
    return bool(HASHED_NAME.search(name))


def cache_control(name: str) -> str:
    return FOREVER if is_hashed(name) else SHORT


def whitenoise_headers(headers, path: str, url: str) -> None:
    """WHITENOISE_ADD_HEADERS_FUNCTION: whitenoise marks a file immutable when the manifest names
    its URL as a hashed copy (10 years, in its own wording); every file gets our one policy
    instead, in the same words as the media view's."""
    headers["Cache-Control"] = FOREVER if "immutable" in headers.get("Cache-Control", "") else SHORT
