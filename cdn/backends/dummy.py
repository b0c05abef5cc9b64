"""The default backend when none is configured: logs each purge and remembers it (for tests)."""

import logging
import threading

from cdn.backends.base import BaseBackend

logger = logging.getLogger("cdn")

_lock = threading.Lock()
#: Every purge this process sent through a DummyBackend: (alias, "tags" | "urls", [items]).
PURGED: list[tuple[str, str, list[str]]] = []


class DummyBackend(BaseBackend):
    """Logs purges at INFO and records them in PURGED. Takes no parameters."""

    max_tags_per_call = 1000
    max_urls_per_call = 1000

    def purge_tag_batch(self, tags):
        logger.info("cdn %s (dummy): purge tags %s", self.alias, " ".join(tags))
        with _lock:
            PURGED.append((self.alias, "tags", list(tags)))

    def purge_url_batch(self, urls):
        logger.info("cdn %s (dummy): purge urls %s", self.alias, " ".join(urls))
        with _lock:
            PURGED.append((self.alias, "urls", list(urls)))
