"""A second reader process for tests: reads `<METHOD> <path> [<client address>]` lines on stdin
and answers one JSON line per request with the status, X-Cache, Retry-After, body and the UPDATE
statements it ran (through its own L1, the shared L2).

`start_reader(**env)` (used by the tests) starts one on the test database and returns
(process, get) where get(path, method="GET", client="127.0.0.1") ->
{"status", "x_cache", "retry_after", "body", "updates"}.
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

    def get(path: str, method: str = "GET", client: str = "127.0.0.1") -> dict:
        proc.stdin.write(f"{method} {path} {client}\n")
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
    from django.db import connections
    from django.test import Client

    client = Client()
    updates = 0

    def count_updates(execute, sql, params, many, context):
        nonlocal updates
        if sql.lstrip().upper().startswith("UPDATE"):
            updates += 1
        return execute(sql, params, many, context)

    for line in sys.stdin:
        method, path, address = line.split()
        updates = 0
        with connections["default"].execute_wrapper(count_updates):
            response = getattr(client, method.lower())(path, REMOTE_ADDR=address)
        print(json.dumps({"status": response.status_code, "x_cache": response.get("X-Cache"),
                          "retry_after": response.get("Retry-After"), "body": response.content.decode(),
                          "updates": updates}), flush=True)


if __name__ == "__main__":
    main()
