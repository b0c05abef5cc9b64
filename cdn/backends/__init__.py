"""CDN purge backends, configured Wagtail-style in settings.CDN_BACKENDS.

    CDN_BACKENDS = {"edge": {"BACKEND": "cdn.backends.varnish.VarnishBackend", "LOCATION": "http://..."}}

Backends are built lazily, once per process (a forked worker builds its own: HTTP sessions are
not shared across fork), and each validates its own parameters in __init__.
"""

import os
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from cdn.backends.base import BaseBackend, PurgeError

__all__ = ["BaseBackend", "PurgeError", "get_backends", "reset_backends"]

DEFAULT_BACKENDS = {"default": {"BACKEND": "cdn.backends.dummy.DummyBackend"}}

_lock = threading.Lock()
_cache: dict = {"pid": None, "backends": None}


def _build() -> dict[str, BaseBackend]:
    config = getattr(settings, "CDN_BACKENDS", None) or DEFAULT_BACKENDS
    backends = {}
    for alias, params in config.items():
        params = dict(params)
        path = params.pop("BACKEND", None)
        if not path:
            raise ImproperlyConfigured(f"CDN_BACKENDS[{alias!r}] has no BACKEND dotted path.")
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"CDN_BACKENDS[{alias!r}]: cannot import {path!r}: {exc}") from exc
        backends[alias] = cls(alias=alias, params=params)
    return backends


def get_backends() -> dict[str, BaseBackend]:
    """Return {alias: backend} for this process, building them on first use."""
    pid = os.getpid()
    if _cache["pid"] != pid or _cache["backends"] is None:
        with _lock:
            if _cache["pid"] != pid or _cache["backends"] is None:
                _cache["backends"] = _build()
                _cache["pid"] = pid
    return _cache["backends"]


def reset_backends(**kwargs) -> None:
    """Forget the built backends (settings changed in tests)."""
    with _lock:
        _cache["backends"] = None
        _cache["pid"] = None
