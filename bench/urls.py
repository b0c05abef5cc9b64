"""URLs of the servers under test: the project's, plus the floor and the cache_page peer.

/bench/floor/          a constant response through the full middleware stack (the floor)
/bench/cp/<any path>   the project's view for <any path>, wrapped in Django's cache_page
"""

from django.conf import settings
from django.http import Http404, HttpResponse
from django.urls import Resolver404, include, path, re_path, resolve
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_GET

_FLOOR_BODY = b'{"ok":true}'
_peer_views = {}


@require_GET
def floor(request):
    return HttpResponse(_FLOOR_BODY, content_type="application/json")


def _peer_view(callback):
    """The project's view wrapped once in cache_page (memoized per view function)."""
    wrapped = _peer_views.get(callback)
    if wrapped is None:
        wrapped = cache_page(settings.BENCH_PEER_TTL, cache="bench_peer", key_prefix="peer")(callback)
        _peer_views[callback] = wrapped
    return wrapped


def peer(request, rest):
    try:
        match = resolve("/" + rest, urlconf="newsite.urls")
    except Resolver404 as exc:
        raise Http404(f"no project view for /{rest}") from exc
    return _peer_view(match.func)(request, *match.args, **match.kwargs)


urlpatterns = [
    path("bench/floor/", floor),
    re_path(r"^bench/cp/(?P<rest>.*)$", peer),
    path("", include("newsite.urls")),
]
