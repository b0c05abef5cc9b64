"""Fixtures of the CDN tests: an origin, a real Varnish in front of it, fake CDN APIs."""

import pytest

from cdn.backends import dummy
from newsite.celery import app as celery_app
from tests.cdn.servers import Origin, Varnish
from tests.support import private_redis  # noqa: F401  (a fixture of tests/cdn too)


@pytest.fixture
def origin():
    server = Origin()
    yield server
    server.stop()


@pytest.fixture
def varnish(origin):
    """A started Varnish (default.vcl) in front of `origin`."""
    edge = Varnish(origin.port).start()
    yield edge
    edge.close()


@pytest.fixture
def eager_celery():
    """The purge drain runs inline on commit, in the process that committed (as `make run` does)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def edge(live_server, settings, eager_celery):
    """A started Varnish (default.vcl) in front of the real newsite (live_server), which purges it."""
    port = int(live_server.url.rsplit(":", 1)[1])
    varnish = Varnish(port).start()
    settings.CDN_BACKENDS = {
        "varnish": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": varnish.url}
    }
    yield varnish
    varnish.close()


@pytest.fixture
def fast_outbox(settings):
    """No backoff between attempts, so a test can drain again at once."""
    settings.CDN_OUTBOX = {"BACKOFF_BASE": 0.0, "BACKOFF_MAX": 0.0}
    return settings


@pytest.fixture(autouse=True)
def _clear_dummy():
    dummy.PURGED.clear()
    yield
    dummy.PURGED.clear()
