"""Issue 27: a write that commits as its host loses Redis and the broker still reaches every tier.

The editor host's Redis (cache and pub/sub) goes through a proxy that the test cuts: what the
editor sends is dropped, nothing comes back, as when its link to Redis drops packets. Its broker
is a closed port (the broker lives on that Redis). The editor's PATCH commits; its app-tier
invalidation cannot be published (queued for replay), its edges are not purged (never before
the app tiers) and its outbox row cannot be handed to Celery: the write answers 200 and nothing
outside the database knows of it. The Celery host (worker + beat, on Redis) re-drives pending
rows every second once they are REDRIVE_AFTER (1 s) old: it invalidates L2 and every L1, then
purges the edge (cdn/outbox.py). Readers race the write on the reader host (2 workers, L1 + L2)
and through Varnish; every read sent more than BOUND after the write returned must show it.
Before the re-drive ran every second (every 30 s), the readers kept the old version past the
window (HIT-L1, and the edge's copy).
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.factories import make_article
from tests.freshness.conftest import get, warm_edge, warm_l1
from tests.support import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FRESHNESS_STACK = {"beat": True, "editor_env": {"CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/1"}}

# REDRIVE_AFTER (1 s) + the beat's period (1 s) + the delivery; room for this shared machine.
BOUND = 3.5
WATCH = BOUND + 2.0  # how long readers go on after the write returned
READERS = 4  # threads per tier
MAX_READS = 20_000  # per thread, a bound on the loop whatever the timing


def test_a_write_whose_host_lost_redis_and_the_broker_reaches_every_tier_within_the_bound(stack, editor):
    article = make_article(title="v1 cut off")
    path = f"/api/articles/{article.id}/"
    warm_l1(stack.readers.url, path)
    warm_edge(stack.edge.url, path)
    seen: list[tuple[str, float, object]] = []  # (tier, sent, Seen)
    stop = threading.Event()

    def read(tier: str, url: str) -> None:
        mine = []
        for _ in range(MAX_READS):
            if stop.is_set():
                break
            sent = time.monotonic()
            mine.append((tier, sent, get(url)))
            time.sleep(0.01)
        seen.extend(mine)

    threads = [threading.Thread(target=read, args=(tier, base + path), daemon=True)
               for tier, base in (("app", stack.readers.url), ("edge", stack.edge.url)) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    stack.editor_proxy.cut()
    try:
        editor.patch(article.id, title="v2 cut off")
        returned = time.monotonic()
        time.sleep(WATCH)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stop.set()
        stack.editor_proxy.heal()

    after = [(tier, sent - returned, s) for tier, sent, s in seen if sent >= returned + BOUND]
    late = [f"{tier} +{offset:.2f}s {s}" for tier, offset, s in after if s.title != "v2 cut off"]
    assert {tier for tier, _, _ in after} == {"app", "edge"}, "the readers did not run past the bound"
    assert all(s.status == 200 for _, _, s in after), [str(s) for _, _, s in after if s.status != 200][:5]
    assert not late, f"{len(late)} of {len(after)} reads sent {BOUND} s after the write returned were old: {late[:5]}"
