from django.apps import AppConfig


class CdnConfig(AppConfig):
    name = "cdn"
    verbose_name = "CDN purges"
    default_auto_field = "django.db.models.BigAutoField"
