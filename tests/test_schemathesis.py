"""OpenAPI describes the API as it behaves (issue 16.7): schemathesis, every check, every
operation, against the live schema of a test server; 0 failures, 0 5xx. Bounded examples so the
run stays short."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import make_article

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

MAX_EXAMPLES = 8


def test_schemathesis_all_checks_all_operations(live_server, tmp_path):
    make_article(title="Schema story")
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert st, "schemathesis is in requirements-dev.txt"
    result = subprocess.run(
        [st, "run", f"{live_server.url}/api/schema/?format=json", "--checks", "all",
         "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,coverage,fuzzing",
         "--no-color", "--seed", "16", "--workers", "2", "--request-timeout", "10"],
        capture_output=True, text=True, timeout=280, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    print(output[-20000:])
    assert result.returncode == 0, output[-6000:]
