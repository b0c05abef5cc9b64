"""A second reader process for tests: reads `GET <path>` lines on stdin and answers one JSON line
per request with the status, X-Cache, Retry-After and body (through its own L1, the shared L2).

`start_reader(**env)` (used by the tests) starts one on the test database and returns
(process, get) where get(path) -> {"status", "x_cache", "retry_after", "body"}.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_reader(**env_overrides):
    from tests.support import database_url

    env = {**os.environ, "DATABASE_URL": database_url(), **env_overrides}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.articles.reader_process"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )

    def get(path: str) -> dict:
        proc.stdin.write(f"GET {path}\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    return proc, get


def stop_reader(proc) -> None:
    proc.stdin.close()
    proc.wait(timeout=10)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")
    import django

    django.setup()
    from django.test import Client

    client = Client()
    for line in sys.stdin:
        _, path = line.split(maxsplit=1)
        response = client.get(path.strip())
        print(json.dumps({"status": response.status_code, "x_cache": response.get("X-Cache"),
                          "retry_after": response.get("Retry-After"), "body": response.content.decode()}), flush=True)


if __name__ == "__main__":
    main()
