from django.apps import AppConfig
from django.core.signals import setting_changed

from caching import conf


def _settings_changed(*, setting, **kwargs):
    if setting in ("CACHES", "TIERED_CACHE_SETTING", conf.settings_name(), conf.kinds_name()):
        from caching import engine

        engine.reset()


class CachingConfig(AppConfig):
    name = "caching"
    verbose_name = "Tiered cache"

    def ready(self):
        setting_changed.connect(_settings_changed, dispatch_uid="caching-settings-changed")
