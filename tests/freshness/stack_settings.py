"""Settings of the app servers started by tests/freshness: the project's settings, plus a test
URLconf (tests/freshness/urls.py: a gated public view next to the real ones) and LEASE_WAIT from
FRESHNESS_LEASE_WAIT (mechanism 7 needs it short)."""

import os

from newsite.settings import *  # noqa: F403
from newsite.settings import NEWSITE_CACHE

ROOT_URLCONF = "tests.freshness.urls"

if os.environ.get("FRESHNESS_LEASE_WAIT"):
    NEWSITE_CACHE = {**NEWSITE_CACHE, "LEASE_WAIT": float(os.environ["FRESHNESS_LEASE_WAIT"])}
