import os

from django.apps import AppConfig


def _celery_process_exit(pid=None, **kwargs):
    """A Celery pool process is gone: drop its live gauges from the multiprocess directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


class OpsConfig(AppConfig):
    name = "newsite.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self):
        from celery.signals import worker_process_shutdown
        from django_structlog import signals as structlog_signals

        from caching.invalidation import on_invalidate
        from newsite.ops import checks  # noqa: F401  (registers the system checks)
        from newsite.ops.logs import add_request_id_header, bind_request_id, log_invalidation

        # One key=value line per tag invalidation (in every process: web, Celery, commands).
        if log_invalidation not in on_invalidate:
            on_invalidate.append(log_invalidation)
        # Celery workers that share PROMETHEUS_MULTIPROC_DIR with gunicorn (docs/observability.md).
        worker_process_shutdown.connect(_celery_process_exit, dispatch_uid="newsite-ops-prometheus-dead")
        # X-Request-ID: the client's when sane, on the response (django-structlog's signals).
        structlog_signals.bind_extra_request_metadata.connect(bind_request_id, dispatch_uid="newsite-request-id")
        for signal in (structlog_signals.bind_extra_request_finished_metadata,
                       structlog_signals.update_failure_response):
            signal.connect(add_request_id_header, dispatch_uid="newsite-request-id-header")
