"""Cloudflare: purge by cache tag and by URL (https://developers.cloudflare.com/api/resources/cache/).

Parameters:
    ZONE_ID     the zone
    API_TOKEN   a token with Cache Purge permission (sent as Authorization: Bearer)
    API_URL     default https://api.cloudflare.com/client/v4 (tests point it at a local server)
    TIMEOUT     seconds per request (default 5)

POST /zones/{zone}/purge_cache with {"tags": [...]} (at most 100 a call: "max operations per
request") or {"files": [...]} (at most 30 a call, the lowest of the plans' URL limits). A tag is
at most 1024 bytes (Cloudflare's Cache-Tag limit); the JSON body has no documented byte limit. A
429 is retried after its Retry-After; a 4xx batch is split (see base.py).
"""

from urllib.parse import quote

from cdn.backends.base import HTTPBackend, PurgeError


class CloudflareBackend(HTTPBackend):
    max_tags_per_call = 100
    max_urls_per_call = 30

    def __init__(self, *, alias, params):
        super().__init__(alias=alias, params=params)
        self.zone_id = self.require("ZONE_ID")
        self.api_token = self.require("API_TOKEN")
        self.api_url = params.get("API_URL", "https://api.cloudflare.com/client/v4").rstrip("/")

    def _purge(self, body):
        url = f"{self.api_url}/zones/{quote(self.zone_id, safe='')}/purge_cache"
        headers = {"Authorization": f"Bearer {self.api_token}", "Content-Type": "application/json"}
        response = self.send("POST", url, json=body, headers=headers)
        try:
            ok = response.json().get("success", False)
        except ValueError:
            ok = False
        if not ok:
            raise PurgeError(f"POST {url}: Cloudflare did not confirm: {response.text[:300]}")

    def purge_tag_batch(self, tags):
        self._purge({"tags": list(tags)})

    def purge_url_batch(self, urls):
        self._purge({"files": list(urls)})
