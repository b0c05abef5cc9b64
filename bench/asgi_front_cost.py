"""The front's own cost per L1 hit, WSGI adapter vs ASGI adapter, in one process (no server):
`python -m bench.asgi_front_cost` with the bench database seeded (issue 31; figures in
bench/results/2026-12-07-asgi.md). Process CPU per call over 20,000 calls, 3 rounds, each
adapter called as its server would (a fresh environ per WSGI call; a scope, receive and send
coroutines per ASGI call); scope_environ alone for its share."""

import asyncio
import io
import os
import sys
import time

for _key, _value in dict(DJANGO_SETTINGS_MODULE="bench.settings", BENCH_MODE="l1l2", DATABASE_URL="postgres://127.0.0.1:5432/newsite_bench_asgi",
                  REDIS_URL="redis://127.0.0.1:6379/6", CELERY_BROKER_URL="redis://127.0.0.1:6379/7", CACHE_KEY_PREFIX="newsite-asgi-micro",
                  DEBUG="false", LOG_LEVEL="WARNING", GC_FREEZE_AFTER_REQUESTS="0").items():
    os.environ.setdefault(_key, _value)

import django  # noqa: E402

django.setup()
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

from caching.front import scope_environ  # noqa: E402
from newsite.front import wrap, wrap_asgi  # noqa: E402

path = os.environ.get("FRONT_COST_PATH", "/api/articles/5941/")  # the 10k database's hot article
wsgi, asgi = wrap(WSGIHandler()), wrap_asgi(ASGIHandler())


def environ():
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1", "HTTP_USER_AGENT": "wrk", "HTTP_ACCEPT": "*/*", "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr}
scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
         "scheme": "http", "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
         "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
status = []
def sr(line, headers, exc_info=None):
    status.append(line)
for _ in range(2):  # the first fills L1 through Django, the second is the front's
    b"".join(wsgi(environ(), sr))
print(status[-1], wsgi.served)
async def recv():
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message):
    pass
N = 20000
async def run_asgi():
    for _ in range(N):
        await asgi(scope, recv, send)
def run_wsgi():
    for _ in range(N):
        wsgi(environ(), sr)
def run_env():
    for _ in range(N):
        scope_environ(scope)
for rnd in range(3):
    for name, fn in (("wsgi", run_wsgi), ("asgi", lambda: asyncio.run(run_asgi())), ("scope_environ", run_env)):
        t = time.process_time()
        fn()
        dt = time.process_time() - t
        print(rnd, name, f"{dt / N * 1e6:.1f} us/call")
print("served", wsgi.served, asgi.served)
