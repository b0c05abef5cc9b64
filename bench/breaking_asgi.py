"""A tiny ASGI dispatcher for measuring the breaking box's event stream (bench/breaking_box.py,
tests/articles/test_breaking_stream.py): PATH to articles.breaking_stream.app, everything else to
Django's ASGI handler. Not the product's entry point (newsite/asgi.py is); run as
    granian --interface asgi bench.breaking_asgi:application
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from articles import breaking_stream  # noqa: E402  (after django.setup())


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and scope["path"] == breaking_stream.PATH:
        return await breaking_stream.app(scope, receive, send)
    return await django_app(scope, receive, send)
