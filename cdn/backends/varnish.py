"""Varnish with vmod xkey (deploy/varnish/default.vcl): HTTP PURGE to each Varnish.

Parameters:
    LOCATION   base URL of a Varnish ("http://127.0.0.1:8080"), or a list of them (all are purged)
    SOFT       True: `xkey-softpurge` (objects become stale, served within grace while refreshed);
               False (default): `xkey` (objects removed)
    HOST       Host header for URL purges when the URL is relative (default: the URL's own host)
    TIMEOUT    seconds per request (default 5)
    MAX_HEADER_BYTES  the varnishd's http_req_hdr_len (default 8192, varnishd's default "8k"):
               one request header line, name included, may not be longer, or Varnish answers 400

Tags go space-separated in one `xkey` request header, so a call carries as many as fit in
MAX_HEADER_BYTES (and at most 100: the xkey vmod walks them one by one under its lock).
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from cdn.backends.base import HTTPBackend


class VarnishBackend(HTTPBackend):
    max_tags_per_call = 100
    max_urls_per_call = 1

    def __init__(self, *, alias, params):
        super().__init__(alias=alias, params=params)
        locations = params.get("LOCATION") or params.get("LOCATIONS")
        if isinstance(locations, str):
            locations = [locations]
        if not locations:
            raise ImproperlyConfigured(f"CDN backend {alias!r} (VarnishBackend) needs LOCATION.")
        for location in locations:
            if urlsplit(location).scheme not in ("http", "https"):
                raise ImproperlyConfigured(
                    f"CDN backend {alias!r}: LOCATION {location!r} is not an http(s) URL."
                )
        self.locations = [location.rstrip("/") for location in locations]
        self.soft = bool(params.get("SOFT", False))
        self.host = params.get("HOST")
        self.header = "xkey-softpurge" if self.soft else "xkey"
        max_header = int(params.get("MAX_HEADER_BYTES", 8192))
        # "name: value\r\n" counts; a little slack for what the VCL or a proxy adds.
        self.max_batch_bytes = max_header - len(self.header) - 4 - 64
        if self.max_batch_bytes < 256:
            raise ImproperlyConfigured(f"CDN backend {alias!r}: MAX_HEADER_BYTES {max_header} is too small.")

    def purge_tag_batch(self, tags):
        for location in self.locations:
            self.send("PURGE", location + "/", headers={self.header: " ".join(tags)})

    def purge_url_batch(self, urls):
        for url in urls:
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = {}
            host = parts.netloc or self.host
            if host:
                headers["Host"] = host
            for location in self.locations:
                self.send("PURGE", location + path, headers=headers)
