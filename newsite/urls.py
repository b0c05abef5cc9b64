from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.cache import patch_cache_control
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from newsite.db_breaker import database_free
from newsite.files import media_file
from newsite.ops import admin_views as ops_admin_views
from newsite.ops import canary as ops_canary
from newsite.ops import views as ops_views


def not_shared(view):
    """`Cache-Control: private, no-store`: the API docs embed the visitor's CSRF token, so no
    shared cache may keep them (the edge passes every non-public route too)."""

    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        patch_cache_control(response, private=True, no_store=True)
        return response

    wrapped.csrf_exempt = getattr(view, "csrf_exempt", False)
    return database_free(wrapped)  # the schema is built from the code, not the database


urlpatterns = [
    # Ops (docs/observability.md): never cached; the Cache page is staff-only (admin login).
    path("metrics", ops_views.metrics_view, name="metrics"),
    path("health/", ops_views.health_view, name="health"),
    path("health/cache/", ops_views.health_cache_view, name="health-cache"),
    path("health/canary/", ops_canary.canary_view, name="health-canary"),  # public, cached: the freshness canary
    path("admin/cache/", ops_admin_views.cache_page, name="admin-cache"),
    path("admin/", admin.site.urls),
    path("api/schema/", not_shared(SpectacularAPIView.as_view()), name="schema"),
    path("api/docs/", not_shared(SpectacularSwaggerView.as_view(url_name="schema")), name="api-docs"),
    path("", include("articles.urls")),
]
if settings.MEDIA_URL.startswith("/"):
    # Uploaded images on the site's own origin (with a bucket's absolute MEDIA_URL, the bucket).
    urlpatterns.append(path(settings.MEDIA_URL.strip("/") + "/<path:name>", media_file, name="media-file"))

handler400 = "articles.errors.handler400"
handler403 = "articles.errors.handler403"
handler404 = "articles.errors.handler404"
handler500 = "articles.errors.handler500"
