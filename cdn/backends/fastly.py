"""Fastly: purge by surrogate key through the API (https://www.fastly.com/documentation/reference/api/purging/).

Parameters:
    SERVICE_ID   the Fastly service
    API_TOKEN    an API token with purge scope (sent as Fastly-Key)
    SOFT         True: Fastly-Soft-Purge: 1 (mark stale instead of removing)
    API_URL      default https://api.fastly.com (tests point it at a local server)
    TIMEOUT      seconds per request (default 5)

Tags: POST /service/{id}/purge with {"surrogate_keys": [...]}, at most 256 keys a call (Fastly's
documented batch limit; a key is at most 1024 bytes, which no batching can fix: such a key is
refused alone and reported, the others are purged).
URLs: POST /purge/{host}{path}, one a call.
"""

from urllib.parse import quote, urlsplit

from cdn.backends.base import HTTPBackend


class FastlyBackend(HTTPBackend):
    max_tags_per_call = 256
    max_urls_per_call = 1

    def __init__(self, *, alias, params):
        super().__init__(alias=alias, params=params)
        self.service_id = self.require("SERVICE_ID")
        self.api_token = self.require("API_TOKEN")
        self.soft = bool(params.get("SOFT", False))
        self.api_url = params.get("API_URL", "https://api.fastly.com").rstrip("/")

    def _headers(self):
        headers = {"Fastly-Key": self.api_token, "Accept": "application/json"}
        if self.soft:
            headers["Fastly-Soft-Purge"] = "1"
        return headers

    def purge_tag_batch(self, tags):
        url = f"{self.api_url}/service/{quote(self.service_id, safe='')}/purge"
        self.send("POST", url, json={"surrogate_keys": list(tags)}, headers=self._headers())

    def purge_url_batch(self, urls):
        for url in urls:
            parts = urlsplit(url)
            target = parts.netloc + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            self.send("POST", f"{self.api_url}/purge/{target}", headers=self._headers())
