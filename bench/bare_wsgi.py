"""A bare WSGI constant: no Django, no middleware. What a Python WSGI server does at best; the
WSGI front's L1 hit is compared with it (issue 17 part 4):

    gunicorn bench.bare_wsgi:application --workers 2 --worker-class sync --bind 127.0.0.1:PORT

By default it answers the floor's body. BARE_WSGI_RESPONSE=<file.json> ({"status": "200 OK",
"headers": [[name, value], ...], "body": "<text>"}) makes it answer those bytes instead, e.g. a
captured L1 hit of the hot article: the same response size and header count, without the work.
"""

import json
import os

STATUS = "200 OK"
BODY = b'{"ok":true}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]

if os.environ.get("BARE_WSGI_RESPONSE"):
    with open(os.environ["BARE_WSGI_RESPONSE"], encoding="utf-8") as replay:
        _response = json.load(replay)
    STATUS, BODY = _response["status"], _response["body"].encode()
    HEADERS = [(name, value) for name, value in _response["headers"]]


def application(environ, start_response):
    start_response(STATUS, HEADERS)
    return [BODY]
