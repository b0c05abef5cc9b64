"""settings_production refuses a known (development, template) SECRET_KEY (issue 16.6)."""

import pytest

from newsite.settings import DEV_SECRET_KEY
from tests.deploy.test_production_settings import manage, production_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, "django-insecure-" + "x" * 50, "a" * 64])
def test_production_refuses_a_known_or_weak_secret_key(key):
    result = manage("check", env=production_env(SECRET_KEY=key))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr
