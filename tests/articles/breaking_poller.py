"""A reader process for tests/articles/test_breaking_box.py: polls a URL as breaking-box.js does
(If-None-Match with the last ETag) every INTERVAL s for at most DURATION s, and writes one JSON
line per poll to stdout: {"sent": epoch s, "status": 200 | 304 | ..., "ids": [...] the article
ids the page shows after this answer}. Stops early when a line "stop" arrives on stdin, or stdin closes.

    python -m tests.articles.breaking_poller URL INTERVAL DURATION
"""

import json
import select
import sys
import time

import requests


def main(url: str, interval: float, duration: float) -> None:
    session = requests.Session()
    etag, ids = None, []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        sent = time.time()
        try:
            response = session.get(url, headers={"If-None-Match": etag} if etag else {}, timeout=10)
            status = response.status_code
            if status == 200:
                etag = response.headers.get("ETag")
                ids = [item["id"] for item in response.json()["results"]]
        except requests.RequestException:
            status = 0
        print(json.dumps({"sent": sent, "status": status, "ids": ids}), flush=True)
        if select.select([sys.stdin], [], [], interval)[0] and sys.stdin.readline().strip() in ("stop", ""):
            return  # told to stop, or the test went away (stdin closed)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
