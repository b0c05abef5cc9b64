"""The cache library ships: caching/ builds as its own wheel (django-tiered-cache, caching/pyproject.toml),
which installs in a fresh venv with nothing of newsite, and there passes the example project's
tests (examples/quotes), the library's own tests (tests/caching, under a minimal settings module)
and Django's own cache suite against TieredCache, on the real Redis.

One venv per module (~15 s: the wheel, then pip from the machine's index at the project's pinned
versions). Everything runs from temporary directories, in a Redis db of its own (12 by default,
TEST_LIBRARY_REDIS_URL to change it) under key prefixes of this run: nothing is flushed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.cache_backend import fetch_django_cache_tests

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "caching"
EXAMPLE = ROOT / "examples" / "quotes"
STANDALONE = Path(__file__).resolve().parent / "standalone"
TESTS = ROOT / "tests"
# What tests/caching imports besides itself, the wheel and its dependencies (no newsite).
CACHING_TEST_HELPERS = ("__init__.py", "support.py", "aio_support.py")
# The tests of tests/caching that need the project itself, left out of the run on the wheel.
# Each drives newsite's URLs (django.test.Client on /api/... and /articles/...): the library's
# response middleware and cache_public views are the site's, not the library's.
PROJECT_ONLY = {
    # 404s of newsite's article pages and API: the negative kind's L1/L2/edge admission via HTTP.
    "tests/caching/test_bounded_state.py::test_random_slugs_and_ids_leave_no_redis_state",
    "tests/caching/test_bounded_state.py::test_a_404_asked_again_is_shared_through_l2_and_the_edge",
    # newsite's /api/search/ view: search_results admitted on their second fill via HTTP.
    "tests/caching/test_bounded_state.py::test_unique_search_queries_cost_two_fixed_bitmaps",
    # fetch() on an OOM / READONLY Redis runs standalone; the same test then asserts newsite's
    # /api/articles/?page=9 answers 200/404, never 500, through the site's middleware.
    "tests/caching/test_redis_errors.py::test_oom_is_served_from_the_loader_and_counted",
    "tests/caching/test_redis_errors.py::test_readonly_replica_is_served_from_the_loader_and_counted",
}
# The library's metadata files: beside the package in the repository, not inside it in the wheel.
METADATA_FILES = {"pyproject.toml", "README.md", "CHANGELOG.md"}
DEPENDENCIES = {"django", "redis", "django-redis", "prometheus-client"}
TEST_TOOLS = ("pytest", "pytest-django")
# What the venv must not inherit from this process: the project on the path, its settings.
UNSET = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV",
         "PROMETHEUS_MULTIPROC_DIR")
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;#]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_pins() -> dict[str, str]:
    """name -> version of requirements.txt and requirements-dev.txt."""
    pins = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            match = PIN.match(line.strip())
            if match:
                pins[_canonical(match[1])] = match[2]
    return pins


def library_redis_url() -> str:
    """The test Redis's server, another db than the project tests' (they FLUSHDB theirs)."""
    url = os.environ.get("TEST_LIBRARY_REDIS_URL")
    if url:
        return url
    return urlsplit(settings.REDIS_URL)._replace(path="/12", query="").geturl()


def run(cmd, *, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


class Venv:
    def __init__(self, root: Path, wheel: Path):
        self.root = root
        self.wheel = wheel
        self.python = root / "venv" / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in UNSET}
        self.env["PATH"] = f"{self.python.parent}{os.pathsep}{self.env.get('PATH', '')}"

    def python_run(self, *args, cwd: Path, env: dict | None = None, timeout: float = 300):
        return run([self.python, *args], cwd=cwd, env={**self.env, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built as a user would (pip's isolated build, hatchling from the index)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, LIBRARY], cwd=ROOT)
    (built,) = out.glob("django_tiered_cache-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Venv:
    """A fresh venv with the wheel, its declared dependencies (at the project's pinned versions)
    and the example's test tools: nothing else."""
    root = tmp_path_factory.mktemp("venv-root")
    run([sys.executable, "-m", "venv", root / "venv"], cwd=root)
    pins = project_pins()
    constraints = root / "constraints.txt"
    constraints.write_text("".join(f"{name}=={pins[name]}\n" for name in sorted(DEPENDENCIES | set(TEST_TOOLS))))
    made = Venv(root, wheel)
    made.python_run("-m", "pip", "install", "--quiet", "-c", constraints, wheel, *TEST_TOOLS, cwd=root, timeout=600)
    return made


def test_the_wheel_holds_the_library_and_its_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        path.relative_to(ROOT).as_posix() for path in LIBRARY.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        and path.relative_to(LIBRARY).as_posix() not in METADATA_FILES
    }
    assert {name for name in shipped if name.endswith(".lua")}, "no Lua scripts in caching/lua?"
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"
    assert not {f"caching/{name}" for name in METADATA_FILES} & names
    package_files = {name for name in names if not name.startswith("django_tiered_cache-")}
    assert package_files == shipped, f"in the wheel but not in caching/: {sorted(package_files - shipped)}"

    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = {_canonical(re.split(r"[\s<>=!~;\[]", line.removeprefix("Requires-Dist: "))[0])
                for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ") and "extra ==" not in line}
    assert required == DEPENDENCIES
    assert "Name: django-tiered-cache" in metadata and "Requires-Python: >=3.11" in metadata


def test_the_venv_sees_the_wheel_and_nothing_of_newsite(venv):
    probe = (
        "import importlib.util, pkgutil, django\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['caching'])\n"
        "django.setup()\n"
        "import caching\n"
        "print(caching.__file__)\n"
        "print(*[name for name in ('newsite', 'articles', 'cdn', 'bench', 'tests')"
        " if importlib.util.find_spec(name)])\n"
        "for module in pkgutil.walk_packages(caching.__path__, 'caching.'):\n"
        "    importlib.import_module(module.name)\n"
    )
    out = venv.python_run("-c", probe, cwd=venv.root).stdout.splitlines()
    assert Path(out[0]).is_relative_to(venv.root / "venv"), out[0]
    assert out[1] == "", f"the venv can import the project's packages: {out[1]}"


def test_the_example_project_passes_its_tests_on_the_wheel(venv, tmp_path):
    """examples/quotes: cache_public pages, caching.fetch(), tags invalidated after commit,
    cache_page on TieredCache. Copied out of the checkout, so only the wheel provides `caching`."""
    site = tmp_path / "quotes"
    run(["cp", "-r", EXAMPLE, site], cwd=tmp_path)
    done = venv.python_run(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=site,
        env={"QUOTES_REDIS_URL": library_redis_url(), "QUOTES_KEY_PREFIX": f"quotes-{uuid.uuid4().hex[:12]}"},
    )
    assert re.search(r"^\d+ passed in ", done.stdout, re.M), done.stdout[-2000:]


def test_the_librarys_own_tests_pass_on_the_wheel(venv, tmp_path):
    """tests/caching (with the helper modules it imports) copied out of the checkout and run in the
    venv under tests/library/standalone/settings_caching.py: SQLite, the library's default setting
    and metric names, a key prefix of this run. All pass but PROJECT_ONLY, deselected: none skips."""
    work = tmp_path / "caching-tests"
    (work / "tests").mkdir(parents=True)
    for name in CACHING_TEST_HELPERS:
        run(["cp", TESTS / name, work / "tests" / name], cwd=tmp_path)
    run(["cp", "-r", TESTS / "caching", work / "tests" / "caching"], cwd=tmp_path)
    run(["rm", "-rf", work / "tests" / "caching" / "__pycache__"], cwd=tmp_path)
    run(["cp", STANDALONE / "settings_caching.py", work / "settings_caching.py"], cwd=tmp_path)
    run(["cp", STANDALONE / "conftest_caching.py", work / "conftest.py"], cwd=tmp_path)
    deselect = [arg for node in sorted(PROJECT_ONLY) for arg in ("--deselect", node)]
    done = subprocess.run(
        [str(venv.python), "-m", "pytest", "-rfEs", "-p", "no:cacheprovider", "--ds", "settings_caching",
         *deselect, "tests/caching"],
        cwd=work, capture_output=True, text=True, timeout=600,
        env={**venv.env, "CACHING_REDIS_URL": library_redis_url(), "CACHING_KEY_PREFIX": f"caching-{uuid.uuid4().hex[:12]}"},
    )
    summary = re.search(r"^=*\s*(\d+) passed, (\d+) deselected(?:, \d+ warnings?)? in ([\d.]+)s", done.stdout, re.M)
    counts = f"inner run: {summary[0].strip(' =') if summary else 'no summary'} (rc {done.returncode})"
    assert done.returncode == 0 and summary, f"{counts}\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert int(summary[2]) == len(PROJECT_ONLY), f"{counts}: deselected other than PROJECT_ONLY"
    assert int(summary[1]) >= 70, f"{counts}: too few of tests/caching ran"
    origin = re.search(r"^caching from: (.+)$", done.stdout, re.M)
    assert origin and Path(origin[1]).is_relative_to(venv.root / "venv"), f"{counts}: caching from {origin}"


def test_djangos_cache_suite_passes_on_tiered_cache_from_the_wheel(venv, tmp_path):
    """BaseCacheTests of the installed Django's sdist (fetched by `make test`), L1 on and off,
    under tests/library/standalone/settings.py: only the culling tests may skip, as in
    tests/cache_backend/test_django_suite.py."""
    try:
        suite = fetch_django_cache_tests.fetch()
    except (fetch_django_cache_tests.FetchError, OSError) as exc:
        pytest.skip(f"Django's cache test suite could not be fetched: {exc}")
    work = tmp_path / "suite"
    run(["cp", "-r", STANDALONE, work], cwd=tmp_path)
    run(["cp", "-r", suite / "cache", work / "cache"], cwd=tmp_path)
    done = venv.python_run(
        "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--ds", "settings", "suite_django_cache.py", cwd=work,
        env={"SUITE_REDIS_URL": library_redis_url(), "SUITE_NAMESPACE": f"suite-{uuid.uuid4().hex[:12]}:djtc"},
    )
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("Culling isn't implemented." in line for line in skips), "\n".join(skips)
    summary = re.search(r"^(\d+) passed, (\d+) skipped", done.stdout, re.M)
    assert summary and int(summary[1]) >= 100 and " failed" not in done.stdout, done.stdout[-2000:]
