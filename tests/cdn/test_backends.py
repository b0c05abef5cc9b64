"""Backends: configuration checks, and Fastly / Cloudflare against local fake APIs (429s, 5xx)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from cdn.backends import get_backends
from cdn.backends.cloudflare import CloudflareBackend
from cdn.backends.cloudfront import CloudFrontBackend
from cdn.backends.dummy import DummyBackend
from cdn.backends.fastly import FastlyBackend
from cdn.backends.varnish import VarnishBackend
from cdn.checks import check_cdn_backends
from cdn.models import PurgeOutbox
from cdn.outbox import drain_outbox
from cdn.purges import enqueue_purge
from tests.cdn.servers import FakeApi

# --- Configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "params", "missing"),
    [
        (FastlyBackend, {"SERVICE_ID": "svc"}, "API_TOKEN"),
        (FastlyBackend, {"API_TOKEN": "t"}, "SERVICE_ID"),
        (CloudflareBackend, {"API_TOKEN": "t"}, "ZONE_ID"),
        (CloudflareBackend, {"ZONE_ID": "z"}, "API_TOKEN"),
        (VarnishBackend, {}, "LOCATION"),
        (VarnishBackend, {"LOCATION": "127.0.0.1:8080"}, "not an http"),
    ],
)
def test_backends_validate_their_parameters(cls, params, missing):
    with pytest.raises(ImproperlyConfigured, match=missing):
        cls(alias="x", params=params)


def test_cloudfront_needs_boto3_or_a_distribution():
    with pytest.raises(ImproperlyConfigured, match="boto3|DISTRIBUTION_ID"):
        CloudFrontBackend(alias="cf", params={})


def test_default_is_the_dummy_backend_and_bad_config_fails_the_system_check(settings):
    settings.CDN_BACKENDS = {}
    assert [(alias, type(b)) for alias, b in get_backends().items()] == [("default", DummyBackend)]

    settings.CDN_BACKENDS = {"fastly": {"BACKEND": "cdn.backends.fastly.FastlyBackend", "SERVICE_ID": "s"}}
    assert [error.id for error in check_cdn_backends()] == ["cdn.E001"]
    settings.CDN_BACKENDS = {"x": {"BACKEND": "cdn.backends.nope.Nope"}}
    assert [error.id for error in check_cdn_backends()] == ["cdn.E001"]


# --- Fastly and Cloudflare through the outbox, against fake APIs ------------------------------


def drain_until_delivered(max_rounds=10):
    for _ in range(max_rounds):
        drain_outbox()
        if not PurgeOutbox.objects.filter(status=PurgeOutbox.Status.PENDING).exists():
            return
    raise AssertionError(f"outbox still pending after {max_rounds} drains")


@pytest.mark.slow
@pytest.mark.django_db
def test_fastly_purges_every_key_in_batches_of_256_through_429_and_500(settings, fast_outbox):
    # 600 keys = 3 calls; the API answers 429 (Retry-After: 1) then 500 along the way.
    api = FakeApi(script=[200, 429, 200, 500], retry_after="1")
    try:
        settings.CDN_BACKENDS = {
            "fastly": {
                "BACKEND": "cdn.backends.fastly.FastlyBackend",
                "SERVICE_ID": "SVC1",
                "API_TOKEN": "tok-123",
                "SOFT": True,
                "API_URL": api.url,
            },
        }
        tags = [f"article:{i}" for i in range(600)]
        enqueue_purge(tags)

        drain_until_delivered()

        row = PurgeOutbox.objects.get()
        assert (row.status, row.attempts) == ("done", 2)  # the 500 cost one failed attempt
        assert "HTTP 500" in row.last_error
        for call in api.calls:
            assert (call["method"], call["path"]) == ("POST", "/service/SVC1/purge")
            assert call["headers"]["Fastly-Key"] == "tok-123"
            assert call["headers"]["Fastly-Soft-Purge"] == "1"
            assert 0 < len(call["body"]["surrogate_keys"]) <= 256
        accepted = api.accepted()
        purged = {k for call in accepted for k in call["body"]["surrogate_keys"]}
        assert purged == set(tags)
        assert [len(c["body"]["surrogate_keys"]) for c in accepted[-3:]] == [256, 256, 88]
    finally:
        api.stop()


@pytest.mark.slow
@pytest.mark.django_db
def test_fastly_url_purge(settings):
    api = FakeApi()
    try:
        backend = FastlyBackend(alias="f", params={"SERVICE_ID": "S", "API_TOKEN": "t", "API_URL": api.url})
        assert backend.purge_urls(["https://news.example/articles/a/", "https://news.example/?page=2"]) == 2
        assert sorted(c["path"] for c in api.calls) == [
            "/purge/news.example/?page=2",
            "/purge/news.example/articles/a/",
        ]
        assert "Fastly-Soft-Purge" not in api.calls[0]["headers"]
    finally:
        api.stop()


@pytest.mark.slow
@pytest.mark.django_db
def test_cloudflare_purges_tags_by_100_and_urls_by_30_through_429_and_503(settings, fast_outbox):
    api = FakeApi(script=[429, 200, 200, 503, 200, 200, 429], retry_after="1")
    try:
        settings.CDN_BACKENDS = {
            "cf": {
                "BACKEND": "cdn.backends.cloudflare.CloudflareBackend",
                "ZONE_ID": "ZONE9",
                "API_TOKEN": "cf-tok",
                "API_URL": api.url + "/client/v4",
            },
        }
        tags = [f"article:{i}" for i in range(250)]
        urls = [f"https://news.example/articles/a-{i}/" for i in range(70)]
        enqueue_purge(tags, urls=urls)

        drain_until_delivered()

        assert PurgeOutbox.objects.get().status == "done"
        for call in api.calls:
            assert (call["method"], call["path"]) == ("POST", "/client/v4/zones/ZONE9/purge_cache")
            assert call["headers"]["Authorization"] == "Bearer cf-tok"
            assert set(call["body"]) in ({"tags"}, {"files"})
            assert len(call["body"].get("tags", [])) <= 100 and len(call["body"].get("files", [])) <= 30
        accepted = api.accepted()
        assert {t for c in accepted for t in c["body"].get("tags", [])} == set(tags)
        assert {u for c in accepted for u in c["body"].get("files", [])} == set(urls)
        final_round = accepted[-6:]  # the last, complete delivery: 3 tag calls then 3 URL calls
        assert [len(c["body"].get("tags", c["body"].get("files"))) for c in final_round] == [
            100,
            100,
            50,
            30,
            30,
            10,
        ]
    finally:
        api.stop()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_long_retry_after_schedules_the_row_no_earlier(settings):
    api = FakeApi(script=[429], retry_after="120")
    try:
        settings.CDN_BACKENDS = {
            "cf": {
                "BACKEND": "cdn.backends.cloudflare.CloudflareBackend",
                "ZONE_ID": "Z",
                "API_TOKEN": "t",
                "API_URL": api.url,
            },
        }
        enqueue_purge(["feed:home"])
        report = drain_outbox()

        row = PurgeOutbox.objects.get()
        assert report.failed == [row.pk] and row.status == "pending" and row.attempts == 1
        assert row.next_attempt_at >= timezone.now() + timedelta(seconds=100)
        assert drain_outbox().delivered == []  # not due yet
    finally:
        api.stop()
