"""Fixtures of the CDN tests: an origin, a real Varnish in front of it, fake CDN APIs."""

import pytest

from cdn.backends import dummy
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
def fast_outbox(settings):
    """No backoff between attempts, so a test can drain again at once."""
    settings.CDN_OUTBOX = {"BACKOFF_BASE": 0.0, "BACKOFF_MAX": 0.0}
    return settings


@pytest.fixture(autouse=True)
def _clear_dummy():
    dummy.PURGED.clear()
    yield
    dummy.PURGED.clear()
