"""A second reader process for tests: reads `GET <path>` lines on stdin and answers one JSON line
per request with the status, X-Cache and body (through its own L1, the shared L2)."""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402


def main() -> None:
    client = Client()
    for line in sys.stdin:
        _, path = line.split(maxsplit=1)
        response = client.get(path.strip())
        print(json.dumps({"status": response.status_code, "x_cache": response.get("X-Cache"), "body": response.content.decode()}), flush=True)


if __name__ == "__main__":
    main()
