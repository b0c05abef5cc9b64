"""The project's URLs plus the gated probe of tests/freshness (under /api/, so the edge caches it
like any public API read)."""

from django.urls import include, path

from tests.freshness import views

urlpatterns = [
    path("api/freshness/gated/<int:gate>/<int:article_id>/", views.gated_article, name="freshness-gated"),
    path("", include("newsite.urls")),
]
