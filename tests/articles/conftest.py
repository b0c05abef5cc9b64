"""Fixtures of the articles tests."""

import pytest
from django.test import Client

from tests.wsgi_client import front_client


@pytest.fixture(params=["django", "front"])
def make_client(request):
    """Every test runs twice: through Django's stack (its test Client), and through the WSGI
    front of newsite/wsgi.py (L1 hits answered before the middleware, the rest by Django)."""
    return Client if request.param == "django" else front_client
