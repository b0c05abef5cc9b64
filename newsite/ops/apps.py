from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "newsite.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self):
        from caching.invalidation import on_invalidate
        from newsite.ops.logs import log_invalidation

        # One key=value line per tag invalidation (in every process: web, Celery, commands).
        if log_invalidation not in on_invalidate:
            on_invalidate.append(log_invalidation)
