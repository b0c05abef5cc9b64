from django.apps import AppConfig
from django.core.signals import setting_changed

_WATCHED = {"NEWSITE_CACHE", "NEWSITE_CACHE_KINDS", "CACHES"}


def _settings_changed(*, setting, **kwargs):
    if setting in _WATCHED:
        from caching import engine

        engine.reset()


class CachingConfig(AppConfig):
    name = "caching"
    verbose_name = "Tiered cache"

    def ready(self):
        setting_changed.connect(_settings_changed, dispatch_uid="caching-settings-changed")
