"""newsite.db_routers: reads to a replica, writes to the primary, read-your-writes for the request
that wrote and (by the pin cookie) for the same client's next requests.

The "replica" here is a second database alias on the same PostgreSQL test database (the TEST
MIRROR arrangement: a separate connection and pool, zero lag). Which alias ran each query is what
is asserted; replication itself is PostgreSQL's (docs/scaling.md)."""

from __future__ import annotations

import pytest
from django.db import connections, transaction
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from articles.models import Article
from newsite.db_routers import PIN_COOKIE, ReadYourWritesMiddleware
from tests.factories import make_article, make_editor, make_user

REPLICA = "replica_mirror"


@pytest.fixture
def replica(transactional_db, settings):
    """A second alias on the same test database, routed by PrimaryReplicaRouter."""
    connections.settings[REPLICA] = {**connections["default"].settings_dict}
    # Open it now: Django's test isolation refuses to open connections of aliases the test case
    # was not declared with, and this alias exists only while the fixture runs.
    connections[REPLICA].connect()
    settings.DATABASE_READ_REPLICAS = [REPLICA]
    settings.DATABASE_ROUTERS = ["newsite.db_routers.PrimaryReplicaRouter"]
    settings.MIDDLEWARE = [settings.MIDDLEWARE[0], "newsite.db_routers.ReadYourWritesMiddleware",
                           *settings.MIDDLEWARE[1:]]
    try:
        yield REPLICA
    finally:
        connections[REPLICA].close()
        if hasattr(connections[REPLICA], "close_pool"):
            connections[REPLICA].close_pool()
        del connections[REPLICA]
        del connections.settings[REPLICA]


class Queries:
    """Counts the queries each alias ran inside the block."""

    def __enter__(self):
        self.contexts = {alias: CaptureQueriesContext(connections[alias]) for alias in ("default", REPLICA)}
        for context in self.contexts.values():
            context.__enter__()
        return self

    def __exit__(self, *exc):
        for context in self.contexts.values():
            context.__exit__(*exc)

    @property
    def primary(self) -> int:
        return len(self.contexts["default"].captured_queries)

    @property
    def replica(self) -> int:
        return len(self.contexts[REPLICA].captured_queries)


def token_client(user, **kwargs) -> Client:
    token = Token.objects.create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}", **kwargs)


def test_requests_read_replicas_until_they_write(replica):
    editor = make_editor(username="router-editor")
    reader = make_user(username="router-reader")
    article = make_article(title="Routed")
    writer = token_client(editor)
    other = token_client(reader)

    # A personal read (never cached): every query on the replica.
    with Queries() as q:
        assert writer.get("/api/user/feed/").status_code == 200
    assert q.replica > 0 and q.primary == 0

    # The write: pinned from the start (an unsafe method reads what it changes), so every query
    # runs on the primary; the response pins the client for a few seconds.
    with Queries() as q:
        response = writer.patch(f"/api/articles/{article.id}/", {"title": "Routed again"},
                                content_type="application/json")
    assert response.status_code == 200, response.content
    assert q.primary > 0 and q.replica == 0
    assert response.cookies[PIN_COOKIE]["max-age"] == 5
    assert response.cookies[PIN_COOKIE]["httponly"]

    # The same client's next read goes to the primary (the test Client sends the cookie back) ...
    with Queries() as q:
        assert writer.get("/api/user/feed/").status_code == 200
    assert q.primary > 0 and q.replica == 0
    # ... any other client still reads a replica.
    with Queries() as q:
        assert other.get("/api/user/feed/").status_code == 200
    assert q.replica > 0 and q.primary == 0


def test_a_write_inside_a_safe_request_pins_the_rest_of_it(replica):
    article = make_article(title="Pin me")
    seen = []

    def view(request):
        with Queries() as q:
            Article.objects.filter(pk=article.pk).exists()
        seen.append(("read before write", q.primary, q.replica))
        Article.objects.filter(pk=article.pk).update(excerpt="written in a GET")
        with Queries() as q:
            Article.objects.filter(pk=article.pk).exists()
        seen.append(("read after write", q.primary, q.replica))
        return HttpResponse("ok")

    response = ReadYourWritesMiddleware(view)(RequestFactory().get("/somewhere/"))
    assert seen == [("read before write", 0, 1), ("read after write", 1, 0)]
    # A safe method never sets the cookie: public GET responses must stay cacheable.
    assert PIN_COOKIE not in response.cookies


def test_outside_requests_and_inside_transactions_read_the_primary(replica):
    make_article(title="Task read")
    with Queries() as q:  # a Celery task, a management command: no request scope
        assert Article.objects.count() == 1
    assert (q.primary, q.replica) == (1, 0)

    def view(request):
        with transaction.atomic(), Queries() as q:
            Article.objects.count()
        return HttpResponse(f"{q.primary} {q.replica}")

    assert ReadYourWritesMiddleware(view)(RequestFactory().get("/")).content == b"1 0"


@pytest.mark.django_db
def test_a_write_position_the_primary_cannot_give_leaves_the_callers_transaction_usable(monkeypatch):
    # Review of issue 26: the cdn drain invalidates the app tiers inside transaction.atomic(); a
    # failed position query there left the transaction aborted ("current transaction is aborted").
    from newsite import db_routers

    monkeypatch.setattr(db_routers, "WRITE_POSITION_SQL", "select 1/0")
    with transaction.atomic():
        make_article()
        assert db_routers.WalFence().write_position() is None
        assert Article.objects.count() == 1


def _raised(alias: str, *statements: str) -> Exception:
    with pytest.raises(Exception) as info, connections[alias].cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return info.value


def test_only_a_replicas_own_failures_run_a_load_again_on_the_primary(replica):
    # Review of issue 26: any loader error that touched a replica was re-run on the primary,
    # statement timeouts of expensive queries and programming errors included.
    from django.db import OperationalError
    from psycopg import errors

    from newsite import db_routers

    fence = db_routers.WalFence()
    with transaction.atomic(using=REPLICA):
        timeout = _raised(REPLICA, "SET LOCAL statement_timeout = 1", "select pg_sleep(1)")
    assert not fence.retry_on_primary(timeout)
    with transaction.atomic(using=REPLICA):
        assert not fence.retry_on_primary(_raised(REPLICA, "select * from no_such_table"))
    # What a standby answers for a query that conflicts with replay (not made here: no standby).
    conflict = OperationalError("canceling statement due to conflict with recovery")
    conflict.__cause__ = errors.SerializationFailure("canceling statement due to conflict with recovery")
    assert fence.retry_on_primary(conflict)
    # A replica that went away: retried, and the request reads the primary from then on.
    pid = connections[REPLICA].cursor().connection.info.backend_pid
    with connections["default"].cursor() as cursor:
        cursor.execute("select pg_terminate_backend(%s)", [pid])
    gone = _raised(REPLICA, "select 1")
    state = db_routers.RequestDbState(replica=REPLICA, position=1)
    token = db_routers._state.set(state)
    try:
        assert fence.retry_on_primary(gone)
    finally:
        db_routers._state.reset(token)
        connections[REPLICA].close()
    assert (state.replica, state.position) == ("default", None)
    assert db_routers._down_until.pop(REPLICA) > 0
