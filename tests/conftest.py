"""Shared fixtures and the skip policy. Tests run against real PostgreSQL and Redis (see Makefile
TEST_ENV).

Skip policy: a suite must not pass by skipping. Under CI=true (.ci/run, or `CI=true make test`)
every skip is reported as a failure unless it is in ALLOWED_SKIPS below; `make test` installs
what the other tests need (deploy/scripts/ensure-services.sh, the Django cache-suite fetch in the
Makefile). The list is documented in README.md ("Skipped tests"); keep the two in step.
"""

from __future__ import annotations

import fnmatch
import os

import pytest

# (node id pattern, fnmatch; words the skip reason must contain) -> why it may skip, even in CI.
ALLOWED_SKIPS: dict[tuple[str, str], str] = {
    # test_django_suite.py and test_django_suite_async.py (the same suite through TieredCache's
    # native async methods, issue 31).
    ("tests/cache_backend/test_django_suite*.py::*::test_cull", "Culling isn't implemented."):
        "Django's own culling tests: like Django's RedisCacheTests, a Redis backend has no MAX_ENTRIES culling",
    ("tests/cache_backend/test_django_suite*.py::*::test_zero_cull", "Culling isn't implemented."):
        "Django's own culling tests: like Django's RedisCacheTests, a Redis backend has no MAX_ENTRIES culling",
    ("tests/cache_backend/test_django_suite*.py::*::test_cull_delete_when_store_empty", "Culling isn't implemented."):
        "Django's own culling tests: like Django's RedisCacheTests, a Redis backend has no MAX_ENTRIES culling",
}


def skips_fail() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def allowed_skip(nodeid: str, reason: str) -> str | None:
    """Why this skip is allowed, or None."""
    for (pattern, words), why in ALLOWED_SKIPS.items():
        if fnmatch.fnmatchcase(nodeid, pattern) and words in reason:
            return why
    return None


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_unexpected_skip(report) -> None:
    reason = _skip_reason(report)
    if allowed_skip(report.nodeid, reason) is None:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true and not in ALLOWED_SKIPS (tests/conftest.py): {reason}\n"
            "make test installs what the tests need; install it, or add the skip to ALLOWED_SKIPS "
            "and README.md with its reason."
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and skips_fail():
        _fail_unexpected_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A module that skips itself at import (pytest.skip(allow_module_level=True), importorskip)."""
    report = yield
    if report.skipped and skips_fail():
        _fail_unexpected_skip(report)
    return report


def pytest_terminal_summary(terminalreporter):
    if not skips_fail():
        return
    allowed = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    terminalreporter.write_sep("-", f"CI=true skip policy: {len(allowed)} allowed skips (tests/conftest.py)")
    for why in sorted({allowed_skip(r.nodeid, _skip_reason(r)) or "?" for r in allowed}):
        terminalreporter.write_line(f"  {why}")


@pytest.fixture(scope="session", autouse=True)
def file_roots(tmp_path_factory):
    """Files of a test run live in temp dirs, never the checkout's: uploads (hero images, the
    demo's pictures) in a MEDIA_ROOT of the run's own, which child processes (app servers,
    workers, a `make up`) inherit through the env; and, in this process, an empty STATIC_ROOT, so
    that what a `make up` collected in this checkout (a manifest: hashed names) does not change
    what the pages of in-process tests name (tests/cdn/test_edge_files.py collects its own)."""
    from django.test.utils import override_settings

    media = str(tmp_path_factory.mktemp("media"))
    previous = os.environ.get("MEDIA_ROOT")
    os.environ["MEDIA_ROOT"] = media
    with override_settings(MEDIA_ROOT=media, STATIC_ROOT=str(tmp_path_factory.mktemp("static"))):
        yield media
    if previous is None:
        os.environ.pop("MEDIA_ROOT", None)
    else:
        os.environ["MEDIA_ROOT"] = previous


@pytest.fixture(autouse=True)
def fresh_cache_tiers():
    """Every test starts with an empty L2 (the test Redis db only) and an empty L1."""
    from caching import engine, fetcher

    redis = engine.redis_client()
    if redis.connection_pool.connection_kwargs.get("db", 0) == 0:
        pytest.exit("refusing to FLUSHDB Redis db 0: run `make test`, or set REDIS_URL to a db of its own", 2)
    redis.flushdb()
    fetcher.clear_local()
    yield
    fetcher.clear_local()
