from django.apps import AppConfig


class CdnConfig(AppConfig):
    name = "cdn"
    verbose_name = "CDN purges"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core.signals import setting_changed

        from cdn import checks  # noqa: F401  (registers the system check)

        setting_changed.connect(_on_setting_changed, dispatch_uid="cdn-reset-backends")


def _on_setting_changed(setting, **kwargs):
    if setting == "CDN_BACKENDS":
        from cdn.backends import reset_backends

        reset_backends()
