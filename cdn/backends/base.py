"""The backend contract: purge_tags(tags) and purge_urls(urls), batched within provider limits.

Batches respect each provider's count AND byte limits (max_*_per_call, max_batch_bytes): slug
tags can be long, and a count-only batch of them overflows a header. A batch the provider
refuses (a 4xx other than 429: too large, malformed) is split in halves and the halves are sent,
down to single items; items refused alone are skipped and reported together in one PurgeError
(`refused`), so the outbox can deliver the rows that do not contain them. Any other failure
raises PurgeError at once; the outbox keeps the rows pending and retries them with backoff.
Purges are idempotent, so retrying a batch that was partly delivered is safe.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from functools import cached_property

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("cdn")


class PurgeError(Exception):
    """The provider did not confirm a purge.

    retry_after: seconds it asked us to wait, if any. refused_by_provider: it answered a 4xx
    (other than 429) to this very request: splitting the batch may help, resending it cannot.
    refused: the items the provider refused even one at a time (the rest were purged)."""

    def __init__(self, message: str, *, retry_after: float | None = None, refused_by_provider: bool = False,
                 refused: frozenset[str] = frozenset()):
        super().__init__(message)
        self.retry_after = retry_after
        self.refused_by_provider = refused_by_provider
        self.refused = refused


def chunked(items: Iterable[str], size: int, *, max_bytes: int | None = None, separator: int = 1) -> Iterator[list[str]]:
    """Yield lists of at most `size` items, in order, each (UTF-8, items joined by `separator`
    bytes) at most `max_bytes` long; an item longer than that alone goes in a list of its own."""
    chunk: list[str] = []
    length = 0
    for item in items:
        item_bytes = len(item.encode())
        if chunk and (len(chunk) >= size or (max_bytes is not None and length + separator + item_bytes > max_bytes)):
            yield chunk
            chunk, length = [], 0
        length += item_bytes + (separator if chunk else 0)
        chunk.append(item)
    if chunk:
        yield chunk


class BaseBackend:
    """Base class: loops over provider-sized batches; subclasses send one batch."""

    #: Most tags / URLs the provider accepts in one call.
    max_tags_per_call = 256
    max_urls_per_call = 30
    #: Most bytes of tags (joined by one separator byte) one call may carry; None: no limit.
    max_batch_bytes: int | None = None

    def __init__(self, *, alias: str, params: dict):
        self.alias = alias
        self.params = params
        self.timeout = float(params.get("TIMEOUT", 5.0))

    def purge_tags(self, tags: Iterable[str]) -> int:
        """Purge every object carrying any of `tags`. Returns the number of provider calls.
        Raises PurgeError (with `refused` if only some items were refused: the rest were purged)."""
        batches = chunked(sorted(set(tags)), self.max_tags_per_call, max_bytes=self.max_batch_bytes)
        return self._send_all(self.purge_tag_batch, batches)

    def purge_urls(self, urls: Iterable[str]) -> int:
        """Purge these absolute URLs. Returns the number of provider calls (as purge_tags)."""
        return self._send_all(self.purge_url_batch, chunked(sorted(set(urls)), self.max_urls_per_call))

    def _send_all(self, send, batches) -> int:
        calls = 0
        refused: dict[str, str] = {}
        for batch in batches:
            calls += self._send_split(send, batch, refused)
        if refused:
            sample = next(iter(refused.values()))
            raise PurgeError(f"{len(refused)} item(s) refused by the provider: {sample}", refused=frozenset(refused))
        return calls

    def _send_split(self, send, batch: list[str], refused: dict[str, str]) -> int:
        """Send one batch; if the provider refuses it, its halves (recursively). Returns calls made."""
        try:
            send(batch)
            return 1
        except PurgeError as exc:
            if not exc.refused_by_provider:
                raise
            if len(batch) == 1:
                refused[batch[0]] = str(exc)
                return 1
            logger.warning("cdn %s: a batch of %d refused (%s); splitting it", self.alias, len(batch), exc)
            middle = len(batch) // 2
            return 1 + self._send_split(send, batch[:middle], refused) + self._send_split(send, batch[middle:], refused)

    def purge_tag_batch(self, tags: list[str]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement purge_tag_batch(tags).")

    def acknowledging_nodes(self) -> list[str]:
        """The nodes a write may wait for (cdn/edge_ack.py): each answers a purge only once it has
        removed what the purge names, within milliseconds (local edges). None by default: a
        remote CDN's API answers before its edge servers have purged, whatever it answers."""
        return []

    def purge_node(self, node: str, tags: Iterable[str], urls: Iterable[str], *, timeout: float) -> None:
        """Purge `tags` and `urls` at one of acknowledging_nodes(), each request bounded by
        `timeout` seconds. Raises PurgeError if the node did not confirm it."""
        raise NotImplementedError(f"{type(self).__name__} acknowledges no writes (acknowledging_nodes() is empty).")

    def purge_url_batch(self, urls: list[str]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement purge_url_batch(urls).")

    def __repr__(self):
        return f"<{type(self).__name__} {self.alias!r}>"


class HTTPBackend(BaseBackend):
    """A backend speaking HTTP with `requests`: lazy session, 429 Retry-After, errors as PurgeError.

    A 429 whose Retry-After is at most RETRY_AFTER_MAX_WAIT seconds (default 5) is waited out in
    place, up to 3 times per call; a longer one becomes a PurgeError carrying retry_after, so the
    outbox schedules the rows no earlier than the provider asked.
    """

    def __init__(self, *, alias: str, params: dict):
        super().__init__(alias=alias, params=params)
        self.retry_after_max_wait = float(params.get("RETRY_AFTER_MAX_WAIT", 5.0))

    @cached_property
    def session(self):
        # Built on first use, in the process that uses it (fork-safe).
        import requests

        return requests.Session()

    def require(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            raise ImproperlyConfigured(f"CDN backend {self.alias!r} ({type(self).__name__}) needs {name}.")
        return value

    def send(self, method: str, url: str, *, timeout: float | None = None, **kwargs):
        """Send one request (`timeout`: seconds, default TIMEOUT); return the response if 2xx,
        else raise PurgeError."""
        import requests

        for _ in range(4):
            try:
                response = self.session.request(method, url, timeout=timeout or self.timeout, **kwargs)
            except requests.RequestException as exc:
                raise PurgeError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 429:
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                if retry_after <= self.retry_after_max_wait:
                    logger.info("cdn %s: 429, retrying in %.1fs", self.alias, retry_after)
                    time.sleep(retry_after)
                    continue
                raise PurgeError(f"{method} {url}: 429 Too Many Requests", retry_after=retry_after)
            if 200 <= response.status_code < 300:
                return response
            raise PurgeError(
                f"{method} {url}: HTTP {response.status_code}: {response.text[:300]}",
                refused_by_provider=400 <= response.status_code < 500,
            )
        raise PurgeError(f"{method} {url}: still 429 after waiting", retry_after=self.retry_after_max_wait)


def _retry_after_seconds(value: str | None) -> float:
    """Retry-After as seconds (delta-seconds or an HTTP date); 1 s when absent or unreadable."""
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return 1.0
