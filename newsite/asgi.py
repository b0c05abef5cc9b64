"""ASGI entry point (granian --interface asgi newsite.asgi:application; WEB_INTERFACE=asgi in
deploy/scripts/run-web.sh).

The same front as newsite/wsgi.py (newsite/front.py, caching/front.py: one decision, the ASGI
adapter AsgiResponseFront): L1 hits of public views are answered in the event loop without a
thread, plain L2 hits after one redis.asyncio GET; everything else reaches Django's ASGI
handler. CACHE_WSGI_FRONT=false serves everything through Django.

Order of a request: `MOUNTS` (other ASGI applications by path prefix), then the front, then
Django. Lifespan events are answered here (Django's handler takes HTTP only): shutdown closes
this loop's async Redis clients.
"""

import gc
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")

django_application = get_asgi_application()

from caching import aio  # noqa: E402 (after django.setup(), which get_asgi_application ran)
from newsite.front import AsgiFreezeAfterWarmup, wrap_asgi  # noqa: E402
from newsite.ops.metrics import reap_dead_processes  # noqa: E402

# Extra ASGI routes, answered before the front: {path prefix: ASGI application}, the longest
# prefix first (e.g. a server-sent events endpoint: MOUNTS["/events/"] = its callable). Each
# receives the scope unchanged (its own path included). Empty: every request goes to the front.
MOUNTS: dict[str, object] = {}


def _mounted(path: str):
    for prefix, app in MOUNTS.items():
        if path.startswith(prefix):
            return app
    return None


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await aio.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _dispatch(front):
    async def application(scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            return await _lifespan(receive, send)
        if MOUNTS:
            mounted = _mounted(scope.get("path", ""))
            if mounted is not None:
                return await mounted(scope, receive, send)
        return await front(scope, receive, send)

    application.front = front  # the front (or Django's handler with front_off_reason): tests, /health/cache/
    return application


front = wrap_asgi(django_application, install=True)
if settings.GC_FREEZE_AFTER_REQUESTS > 0:
    front = AsgiFreezeAfterWarmup(front, settings.GC_FREEZE_AFTER_REQUESTS)
application = _dispatch(front)

# As newsite/wsgi.py: a worker replacing a dead one reaps the dead one's metric files, and what
# the import built is frozen out of the collector's sight (docs/bench.md).
reap_dead_processes()
gc.freeze()
