"""The skip policy of tests/conftest.py: under CI=true a skip fails the run unless it is one of
ALLOWED_SKIPS (Django's culling tests); without CI it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ALLOWED_SKIPS, allowed_skip
from tests.support import REPO

PROBE = "tests/deploy/test_skip_policy.py::test_probe_skips_when_asked"


def test_probe_skips_when_asked():
    """Passes in the suite; skips when the policy tests below run it with NEWSITE_SKIP_PROBE=1."""
    if os.environ.get("NEWSITE_SKIP_PROBE"):
        pytest.skip("the probe was asked to skip")


def run_probe(ci: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEWSITE_SKIP_PROBE": "1"}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", PROBE, "-q", "-p", "no:cacheprovider"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_under_ci_an_unlisted_skip_fails_the_run():
    result = run_probe("true")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout
    assert "not in ALLOWED_SKIPS" in result.stdout and "the probe was asked to skip" in result.stdout


def test_outside_ci_a_skip_stays_a_skip():
    result = run_probe(None)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout


def test_only_djangos_culling_tests_may_skip():
    suite = "tests/cache_backend/test_django_suite.py::TieredCacheDjangoSuiteTests"
    for name in ("test_cull", "test_zero_cull", "test_cull_delete_when_store_empty"):
        assert allowed_skip(f"{suite}::{name}", "Culling isn't implemented.")
    # Not for another reason, not for another test of that suite, not for the whole module.
    assert allowed_skip(f"{suite}::test_cull", "redis-server binary not installed") is None
    assert allowed_skip(f"{suite}::test_add", "Culling isn't implemented.") is None
    assert allowed_skip("tests/cache_backend/test_django_suite.py", "could not be fetched") is None
    assert len(ALLOWED_SKIPS) == 3
