"""Settings of the Celery worker of tests/cdn/test_remote_cdn_lag.py: the project's, with one
Fastly backend whose API is the test's fake (FAKE_FASTLY_URL)."""

import os

from newsite.settings import *  # noqa: F403

CDN_BACKENDS = {"fastly": {"BACKEND": "cdn.backends.fastly.FastlyBackend", "SERVICE_ID": "svc",
                           "API_TOKEN": "token", "API_URL": os.environ["FAKE_FASTLY_URL"]}}
