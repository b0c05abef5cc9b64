from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("articles.urls")),
]

handler400 = "articles.errors.handler400"
handler403 = "articles.errors.handler403"
handler404 = "articles.errors.handler404"
handler500 = "articles.errors.handler500"
