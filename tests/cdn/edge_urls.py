"""A URLconf for tests/cdn/test_edge_vcl.py: the project's URLs plus one public view with a
parameter the committed VCL does not know."""

from django.http import HttpResponse
from django.urls import include, path

from caching.http import cache_public
from caching.params import IntParam


@cache_public(kind="article", params=(IntParam("year", minimum=1900, maximum=2100, default=2026),))
def archive(request):
    return HttpResponse(b"archive")


urlpatterns = [
    path("api/archive/", archive, name="api-archive"),
    path("", include("newsite.urls")),
]
