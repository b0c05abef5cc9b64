"""The Celery app. Broker from CELERY_BROKER_URL (Redis by default; RabbitMQ by changing the URL)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsite.settings")

app = Celery("newsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
