from . import prometheus  # noqa: F401, I001 (first: before any metric is created)
from .celery import app as celery_app

__all__ = ("celery_app",)
