"""Purges are batched within the provider's byte limits, and a batch the provider refuses is
split, never resent unchanged (issue 15.2). With a real varnishd and a backlog of long slug tags."""

import pytest

from articles import tags as T
from cdn.backends.base import chunked
from cdn.models import PurgeOutbox
from cdn.outbox import drain_outbox
from cdn.purges import enqueue_purge
from tests.cdn.servers import render_vcl
from tests.support import Varnishd, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def long_slug_tag(i: int) -> str:
    """An article-slug tag of ~230 characters (a long headline's slug)."""
    return T.article_slug_tag(f"{i:04d}-" + "-".join(["a-very-long-headline-about-something"] * 6))


@pytest.fixture
def small_header_varnish(origin):
    """A varnishd whose http_req_hdr_len is 2k (the backend is told 8k: a misconfiguration the
    split must survive)."""
    port, admin_port = free_ports(2)
    edge = Varnishd(port=port, admin_port=admin_port, vcl=render_vcl(origin.port),
                    params=("-p", "http_req_hdr_len=2k")).start()
    yield edge
    edge.close()


def cache_pages(origin, edge, count):
    import requests

    paths = {}
    for i in range(count):
        path = f"/articles/{i}/"
        origin.page(path, f"old {i}", tags=[long_slug_tag(i)])
        assert requests.get(edge.url + path, timeout=10).text == f"old {i}"
        origin.page(path, f"new {i}", tags=[long_slug_tag(i)])
        paths[path] = i
    return paths


def assert_all_fresh(edge, paths):
    import requests

    stale = [p for p, i in paths.items() if requests.get(edge.url + p, timeout=10).text != f"new {i}"]
    assert stale == []


def test_chunks_respect_count_and_bytes():
    items = [long_slug_tag(i) for i in range(100)]
    chunks = list(chunked(items, 100, max_bytes=8000))
    assert sum(chunks, []) == items
    assert all(len(" ".join(chunk).encode()) <= 8000 for chunk in chunks) and len(chunks) > 1
    assert [len(c) for c in chunked(["x"] * 250, 100)] == [100, 100, 50]
    assert list(chunked(["y" * 50], 10, max_bytes=10)) == [["y" * 50]]  # too long alone: alone


def test_a_backlog_of_long_slug_tags_reaches_varnish(settings, origin, varnish):
    settings.CDN_BACKENDS = {"edge": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": varnish.url}}
    paths = cache_pages(origin, varnish, 90)
    for i in range(90):  # a backlog: 90 rows (the broker was down), ~21 KB of tags together
        enqueue_purge([long_slug_tag(i)])
    assert sum(len(long_slug_tag(i)) + 1 for i in range(90)) > 2 * 8192

    report = drain_outbox()

    assert len(report.delivered) == 90 and not report.failed and not report.dead
    assert set(PurgeOutbox.objects.values_list("status", flat=True)) == {"done"}
    assert_all_fresh(varnish, paths)


def test_a_refused_batch_is_split_and_delivered(settings, origin, small_header_varnish, fast_outbox):
    edge = small_header_varnish
    settings.CDN_BACKENDS = {"edge": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": edge.url}}
    paths = cache_pages(origin, edge, 40)
    for i in range(40):
        enqueue_purge([long_slug_tag(i)])
    monster = "article-slug:" + "z" * 3000  # longer than the 2k header limit even alone
    [monster_row] = enqueue_purge([monster])

    report = drain_outbox()  # 8k batches: Varnish answers 400; halves until they fit

    assert sorted(report.delivered) == sorted(PurgeOutbox.objects.exclude(pk=monster_row).values_list("pk", flat=True))
    assert_all_fresh(edge, paths)
    row = PurgeOutbox.objects.get(pk=monster_row)  # refused alone: it fails alone, never merged
    assert (row.status, row.delivered_to, row.attempts) == ("pending", [], 1)
    assert "refused by the provider" in row.last_error and "HTTP 400" in row.last_error

    again = drain_outbox()  # the re-drive: only the refused row, and only its own tag
    assert (again.delivered, again.failed) == ([], [monster_row])
    assert PurgeOutbox.objects.filter(status="done").count() == 40


@pytest.mark.parametrize("provider", ["cloudflare", "fastly"])
def test_api_providers_split_a_refused_batch(provider):
    from cdn.backends.cloudflare import CloudflareBackend
    from cdn.backends.fastly import FastlyBackend
    from tests.cdn.servers import FakeApi

    api = FakeApi(script=[400])  # the first call is refused, then everything is accepted
    try:
        if provider == "cloudflare":
            backend = CloudflareBackend(alias="cf", params={"ZONE_ID": "z", "API_TOKEN": "t", "API_URL": api.url})
            key = "tags"
        else:
            backend = FastlyBackend(alias="f", params={"SERVICE_ID": "s", "API_TOKEN": "t", "API_URL": api.url})
            key = "surrogate_keys"
        assert backend.purge_tags(["a", "b", "c", "d"]) == 3
        assert [call["body"][key] for call in api.calls] == [["a", "b", "c", "d"], ["a", "b"], ["c", "d"]]
    finally:
        api.stop()
