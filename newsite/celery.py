"""The Celery app. Broker from CELERY_BROKER_URL (Redis by default; RabbitMQ by changing the URL).

Logging: the worker's handlers keep Celery's destinations (-l, --logfile) and take newsite's
logfmt formatter; django-structlog's boot step binds the request id a task was sent with (and its
task_id) for the task's log lines (newsite/ops/logs.py).
"""

import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")

app = Celery("newsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(DjangoStructLogInitStep)


def _use_logfmt(logger=None, **kwargs):
    from newsite.ops.logs import use_logfmt_in_celery

    use_logfmt_in_celery(logger=logger)


after_setup_logger.connect(_use_logfmt, weak=False)
after_setup_task_logger.connect(_use_logfmt, weak=False)
