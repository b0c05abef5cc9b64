"""Files the site serves besides its pages: the static storage and the media view.

- ManifestStaticStorage: whitenoise's compressed manifest storage (content-hashed names written by
  `collectstatic`), which answers the plain names while nothing has been collected (`make run`,
  tests), instead of refusing to render a page.
- media_file: the files of the default storage (uploaded images and their renditions) at
  MEDIA_URL, with the cache policy of newsite/file_cache.py: immutable for a year when the name
  carries a content hash, a minute otherwise. Behind the edge (deploy/varnish/default.vcl keeps
  /media/ like /static/) the app serves each file about once per edge; nginx or a bucket can serve
  MEDIA_ROOT instead (docs/http.md, "Static files and images").
"""

from __future__ import annotations

import mimetypes

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseNotModified
from django.utils.http import http_date
from django.views.decorators.http import require_safe
from django.views.static import was_modified_since
from whitenoise.storage import CompressedManifestStaticFilesStorage

from newsite import file_cache
from newsite.db_breaker import database_free


class ManifestStaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names from the manifest `collectstatic` wrote; with no manifest at all (nothing
    collected), the plain names, which whitenoise then serves with the short life. A manifest that
    lacks a name is still an error (a file added since the last collectstatic)."""

    def stored_name(self, name):
        if not self.hashed_files:
            return name
        return super().stored_name(name)


@database_free
@require_safe
def media_file(request, name: str):
    """One file of the default storage, or 404. Costs a stat and an open (FileSystemStorage)."""
    try:
        if not name or name.endswith("/") or not default_storage.exists(name):
            raise Http404("no such file")
        modified = default_storage.get_modified_time(name).timestamp()
        if not was_modified_since(request.META.get("HTTP_IF_MODIFIED_SINCE"), modified):
            response = HttpResponseNotModified()
        else:
            content_type, encoding = mimetypes.guess_type(name)
            response = FileResponse(default_storage.open(name), content_type=content_type or "application/octet-stream")
            if encoding:
                response.headers["Content-Encoding"] = encoding
    except (SuspiciousFileOperation, IsADirectoryError, NotADirectoryError, FileNotFoundError) as exc:
        raise Http404("no such file") from exc
    response.headers["Last-Modified"] = http_date(modified)
    response.headers["Cache-Control"] = file_cache.cache_control(name)
    return response
