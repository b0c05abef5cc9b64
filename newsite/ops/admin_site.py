"""The project's admin site: Django's, plus an "Operations" section on the index and in the side
navigation that links the Cache page (/admin/cache/, newsite/ops/admin_views.py), which is a
plain admin view and no model admin, so Django's app list would not show it (issue 33)."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.urls import reverse


class NewsiteAdminSite(admin.AdminSite):
    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label in (None, "ops") and request.user.is_active and request.user.is_staff:
            url = reverse("admin-cache")
            apps.append({
                "name": "Operations",
                "app_label": "ops",
                "app_url": url,
                "has_module_perms": True,
                "models": [{
                    "name": "Cache",
                    "object_name": "Cache",
                    "admin_url": url,
                    "add_url": None,
                    "view_only": True,
                    "perms": {"view": True, "add": False, "change": False, "delete": False},
                }],
            })
        return apps


class NewsiteAdminConfig(AdminConfig):
    """django.contrib.admin with this site: INSTALLED_APPS names it instead of
    "django.contrib.admin", so `admin.site` is a NewsiteAdminSite everywhere."""

    default = False
    default_site = "newsite.ops.admin_site.NewsiteAdminSite"
