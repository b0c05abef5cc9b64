from django.apps import AppConfig


class CdnConfig(AppConfig):
    name = "cdn"
    verbose_name = "CDN purges"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core.signals import setting_changed

        from caching import engine
        from caching.invalidation import on_invalidate
        from cdn import checks  # noqa: F401  (registers the system check)
        from cdn.purges import enqueue_purge_hook, reapply_recent

        setting_changed.connect(_on_setting_changed, dispatch_uid="cdn-reset-backends")
        # Every tag invalidation writes CDN outbox rows inside the writer's transaction.
        if enqueue_purge_hook not in on_invalidate:
            on_invalidate.append(enqueue_purge_hook)
        # Redis back in time: the outbox re-applies the invalidations it lost (cdn/purges.py).
        if reapply_recent not in engine.on_rewound:
            engine.on_rewound.append(reapply_recent)


def _on_setting_changed(setting, **kwargs):
    if setting == "CDN_BACKENDS":
        from cdn.backends import reset_backends

        reset_backends()
