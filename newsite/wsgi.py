"""WSGI entry point (gunicorn newsite.wsgi).

The Django application behind the WSGI front (newsite/front.py): L1 and L2 hits of public views are
answered before Django's request machinery; everything else reaches Django unchanged.
CACHE_WSGI_FRONT=false serves everything through Django.
"""

import gc
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")

application = get_wsgi_application()

from newsite.front import FreezeAfterWarmup, wrap  # noqa: E402 (after django.setup(), which get_wsgi_application ran)
from newsite.ops.metrics import reap_dead_processes  # noqa: E402

application = wrap(application, install=True)
# A worker replacing a dead one (granian respawns them; no server hook does this there).
reap_dead_processes()
# What the import built (Django, the URLconf, the app's modules) lives as long as the process:
# out of the collector's sight, so a full collection - which holds the GIL, every thread of the
# worker waits - scans only what came after (L1 entries, requests). Under gunicorn's preload_app
# it also keeps those pages shared with the master. (A gc.callbacks probe under Zipf load saw
# full collections of 50-430 ms in the bench's processes; docs/bench.md.)
gc.freeze()


if settings.GC_FREEZE_AFTER_REQUESTS > 0:
    application = FreezeAfterWarmup(application, settings.GC_FREEZE_AFTER_REQUESTS)
