"""Fetch Django's own cache test suite (tests/cache/ of the installed Django's sdist) into
.venv/django-tests/<version>/cache/ and make it importable as the package `cache` (the name its
KEY_FUNCTION dotted path "cache.tests.custom_key_func" expects).

Nothing of Django's test code is committed here: the sdist is downloaded once with the venv's
pip (PyPI checks the hash), then reused. Run by tests/cache_backend/conftest.py at collection, or
by hand: `.venv/bin/python tests/cache_backend/fetch_django_cache_tests.py`.

One edit is made to the extracted copy: models.py's Poll gets `app_label = "cache"` (Django's
runner installs the "cache" app; we do not, so the model is declared explicitly and its table is
created by the test class itself).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / ".venv" / "django-tests"
FILES = ("__init__.py", "tests.py", "models.py", "closeable_cache.py", "liberal_backend.py", "failing_cache.py")
POLL_ANCHOR = '    pub_date = models.DateTimeField("date published", default=expensive_calculation)\n'
POLL_META = '\n    class Meta:\n        app_label = "cache"\n'


class FetchError(RuntimeError):
    pass


def suite_dir(version: str | None = None) -> Path:
    """The directory to put on sys.path (it holds the `cache` package)."""
    return CACHE_DIR / (version or django.get_version())


def fetch(version: str | None = None) -> Path:
    """Download and extract once; returns suite_dir(). Raises FetchError (no network, ...)."""
    version = version or django.get_version()
    target = suite_dir(version)
    package = target / "cache"
    if all((package / name).exists() for name in FILES):
        return target
    sdist_dir = CACHE_DIR / "sdist"
    sdist = sdist_dir / f"django-{version}.tar.gz"
    if not sdist.exists():
        sdist_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"Django=={version}", "-d", str(sdist_dir), "--quiet", "--disable-pip-version-check"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"pip download of the Django {version} sdist timed out") from exc
        if done.returncode != 0 or not sdist.exists():
            raise FetchError(f"pip download of the Django {version} sdist failed: {done.stderr.strip()[-400:]}")
    package.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tar:
        for name in FILES:
            member = tar.getmember(f"django-{version}/tests/cache/{name}")
            text = tar.extractfile(member).read().decode()
            if name == "models.py":
                if POLL_ANCHOR not in text:
                    raise FetchError("Django's tests/cache/models.py changed: update POLL_ANCHOR")
                text = text.replace(POLL_ANCHOR, POLL_ANCHOR + POLL_META)
            partial = package / f"{name}.part"
            partial.write_text(text)
            partial.replace(package / name)  # atomic: an interrupted fetch never looks complete
    return target


if __name__ == "__main__":
    print(fetch())
