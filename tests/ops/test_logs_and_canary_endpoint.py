"""In-process checks of the structlog lines, the request id and the canary endpoint (the live
stack is tests/ops/test_freshness_canary.py)."""

from __future__ import annotations

import logging
import uuid

import pytest
import structlog

from newsite.ops import canary
from newsite.ops.logs import logfmt_formatter, sane_request_id

pytestmark = pytest.mark.django_db


def render(logger_name: str, message: str, *args) -> str:
    record = logging.LogRecord(logger_name, logging.INFO, __file__, 1, message, args, None)
    return logfmt_formatter().format(record)


def test_stdlib_lines_are_logfmt_with_the_bound_request_id():
    with structlog.contextvars.bound_contextvars(request_id="rid-1", task_id="t-9"):
        line = render("cdn", "event=cdn_purge_failed backend=%s rows=%d error=%s", "varnish", 2, '"Connection refused"')
    assert "level=info logger=cdn event=cdn_purge_failed" in line
    assert "request_id=rid-1" in line and "task_id=t-9" in line
    assert "backend=varnish rows=2" in line and 'error="Connection refused"' in line
    assert "\n" not in line
    plain = render("newsite", "cache lease wait for %s exceeded", "k")
    assert 'event="cache lease wait for k exceeded"' in plain and "request_id" not in plain


def test_log_event_keeps_its_event_names_and_fields(caplog):
    from newsite.ops.logs import log_event

    with caplog.at_level(logging.INFO, logger="newsite.ops"), structlog.contextvars.bound_contextvars(request_id="r2"):
        log_event("admin_purge", user="editor", count=2, tags=frozenset({"feed:home", "article:1"}))
    lines = [logfmt_formatter().format(r) for r in caplog.records if r.name == "newsite.ops"]
    assert len(lines) == 1
    assert "event=admin_purge" in lines[0]
    assert "user=editor count=2 tags=article:1,feed:home" in lines[0]
    assert "request_id=r2" in lines[0]


@pytest.mark.parametrize(("given", "kept"), [
    ("abc-123", True), ("0f3a9c1e2b7d4a58", True), (str(uuid.uuid4()), True), ("Root:1.2_3", True),
    ("", False), ("has space", False), ("new\nline", False), ('quo"te', False), ("x" * 129, False),
    ("-leading-dash", False), ("é", False),
])
def test_sane_request_ids(given, kept):
    assert (sane_request_id(given) == given) is kept


def test_response_carries_the_clients_request_id_or_a_new_one(client):
    response = client.get("/health/", HTTP_X_REQUEST_ID="client-id-42")
    assert response["X-Request-ID"] == "client-id-42"
    response = client.get("/health/", HTTP_X_REQUEST_ID="bad id; drop table")
    assert uuid.UUID(response["X-Request-ID"])  # generated
    response = client.get("/api/articles/31337/")  # a public (cached) 404 gets one too
    assert uuid.UUID(response["X-Request-ID"])


def test_canary_endpoint_before_and_after_a_write(client, django_capture_on_commit_callbacks):
    response = client.get(canary.PATH)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert response["Surrogate-Key"] == "canary"
    health = client.get("/health/cache/")
    assert health.status_code == 200 and health.json()["canary"] == "never ran"
    assert health.json()["status"] == "ok" and health.json()["failed"] == []

    with django_capture_on_commit_callbacks(execute=True):
        value, committed_at = canary.write_canary()
    assert value == 1 and committed_at > 0
    response = client.get(canary.PATH)
    assert response.status_code == 200, response.content
    assert response.json()["value"] == 1
    assert response["Surrogate-Key"] == "canary" and response["X-Cache"] == "MISS"
    assert "s-maxage=300" in response["Cache-Control"] and "stale-while-revalidate" not in response["Cache-Control"]
    assert client.get(canary.PATH)["X-Cache"] == "HIT-L1"
    assert canary.read_l2() == (True, 1)

    with django_capture_on_commit_callbacks(execute=True):
        assert canary.write_canary()[0] == 2
    assert canary.read_l2() == (True, None)  # invalidated: gone from L2
    response = client.get(canary.PATH)
    assert response.json()["value"] == 2 and response["X-Cache"] == "MISS"
    assert client.post(canary.PATH).status_code == 405

    # Its purges go through the CDN outbox like any write, but stay off the admin's recent list.
    from cdn.models import PurgeOutbox
    from newsite.ops import cachestats

    assert PurgeOutbox.objects.filter(tags=["canary"]).count() >= 2
    assert all(row["tags"] != ["canary"] for row in cachestats.recent_purges())
