"""System checks: CDN_BACKENDS must build (each backend validates its own parameters)."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register()
def check_cdn_backends(app_configs=None, **kwargs):
    from cdn.backends import get_backends, reset_backends

    reset_backends()
    try:
        get_backends()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="Fix settings.CDN_BACKENDS (docs/cdn.md).", id="cdn.E001")]
    return []
