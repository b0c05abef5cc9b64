"""Varnish with vmod xkey (deploy/varnish/default.vcl): HTTP PURGE to each Varnish.

Parameters:
    LOCATION   base URL of a Varnish ("http://127.0.0.1:8080"), or a list of them (all are purged)
    SOFT       True: `xkey-softpurge` (objects become stale, served within grace while refreshed);
               False (default): `xkey` (objects removed)
    HOST       Host header for URL purges when the URL is relative (default: the URL's own host)
    TIMEOUT    seconds per request (default 5)
    MAX_HEADER_BYTES  the varnishd's http_req_hdr_len (default 8192, varnishd's default "8k"):
               one request header line, name included, may not be longer, or Varnish answers 400
    ACKNOWLEDGE_WRITES  True (default): a write waits for every LOCATION to confirm its purge,
               within CDN_OUTBOX["EDGE_ACK_WAIT"] (cdn/edge_ack.py); False: the outbox's drain only

Tags go space-separated in one `xkey` request header, so a call carries as many as fit in
MAX_HEADER_BYTES (and at most 100: the xkey vmod walks them one by one under its lock).
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from cdn.backends.base import HTTPBackend, chunked


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
        self.acknowledge_writes = bool(params.get("ACKNOWLEDGE_WRITES", True))
        max_header = int(params.get("MAX_HEADER_BYTES", 8192))
        # "name: value\r\n" counts; a little slack for what the VCL or a proxy adds.
        self.max_batch_bytes = max_header - len(self.header) - 4 - 64
        if self.max_batch_bytes < 256:
            raise ImproperlyConfigured(f"CDN backend {alias!r}: MAX_HEADER_BYTES {max_header} is too small.")

    def acknowledging_nodes(self) -> list[str]:
        """Every LOCATION: a Varnish answers a PURGE once the xkey index has removed the objects."""
        return list(self.locations) if self.acknowledge_writes else []

    def purge_node(self, node, tags, urls, *, timeout):
        for batch in chunked(sorted(set(tags)), self.max_tags_per_call, max_bytes=self.max_batch_bytes):
            self._purge_tags_at(node, batch, timeout=timeout)
        for url in sorted(set(urls)):
            self._purge_url_at(node, url, timeout=timeout)

    def purge_tag_batch(self, tags):
        for location in self.locations:
            self._purge_tags_at(location, tags)

    def purge_url_batch(self, urls):
        for url in urls:
            for location in self.locations:
                self._purge_url_at(location, url)

    def _purge_tags_at(self, location, tags, *, timeout=None):
        self.send("PURGE", location + "/", headers={self.header: " ".join(tags)}, timeout=timeout)

    def _purge_url_at(self, location, url, *, timeout=None):
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc or self.host
        self.send("PURGE", location + path, headers={"Host": host} if host else {}, timeout=timeout)
