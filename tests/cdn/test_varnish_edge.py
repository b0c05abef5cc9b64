"""deploy/varnish/default.vcl in a real varnishd, in front of a small origin (tests/cdn/servers.py)."""

import http.client
import time

import pytest

from cdn.backends.varnish import VarnishBackend
from tests.cdn.servers import Varnish
from tests.support import wait_until

pytestmark = pytest.mark.slow


def test_miss_then_hit_and_tag_headers_stripped(origin, varnish):
    origin.page("/api/articles/12/", "v1", tags=["articles", "article:12", "author:3"])

    first = varnish.get("/api/articles/12/")
    second = varnish.get("/api/articles/12/")

    assert (first.status_code, first.text, first.headers["X-Cache-Edge"]) == (200, "v1", "MISS")
    assert (second.text, second.headers["X-Cache-Edge"]) == ("v1", "HIT")
    assert origin.hits("/api/articles/12/") == 1
    for name in ("Surrogate-Key", "Cache-Tag", "xkey", "X-Edge-SWR"):
        assert name not in second.headers


def test_purge_of_a_tag_through_the_backend_makes_next_get_fresh(origin, varnish):
    origin.page("/api/articles/12/", "title one", tags=["article:12", "author:3"])
    origin.page("/api/articles/", "feed with title one", tags=["articles", "feed:home", "article:12"])
    origin.page("/api/articles/13/", "other", tags=["article:13", "author:3"])
    for path in ("/api/articles/12/", "/api/articles/", "/api/articles/13/"):
        varnish.get(path)
    origin.page("/api/articles/12/", "title two", tags=["article:12", "author:3"])
    origin.page("/api/articles/", "feed with title two", tags=["articles", "feed:home", "article:12"])

    backend = VarnishBackend(alias="edge", params={"LOCATION": varnish.url})
    assert backend.purge_tags(["article:12"]) == 1

    detail, feed, other = (
        varnish.get(p) for p in ("/api/articles/12/", "/api/articles/", "/api/articles/13/")
    )
    assert (detail.text, detail.headers["X-Cache-Edge"]) == ("title two", "MISS")
    assert (feed.text, feed.headers["X-Cache-Edge"]) == ("feed with title two", "MISS")
    assert other.headers["X-Cache-Edge"] == "HIT"  # untouched tag stays cached


def test_purge_of_a_url(origin, varnish):
    origin.page("/articles/hello/", "old")
    varnish.get("/articles/hello/")
    origin.page("/articles/hello/", "new")

    VarnishBackend(alias="edge", params={"LOCATION": varnish.url}).purge_urls(
        ["http://127.0.0.1/articles/hello/"]
    )

    assert varnish.get("/articles/hello/").text == "new"


def test_soft_purge_serves_stale_once_then_fresh(origin, varnish):
    origin.page("/category/world/", "old", tags=["feed:category:4"])
    varnish.get("/category/world/")
    origin.page("/category/world/", "new", tags=["feed:category:4"])

    VarnishBackend(alias="edge", params={"LOCATION": varnish.url, "SOFT": True}).purge_tags(
        ["feed:category:4"]
    )

    # Within stale-while-revalidate: the stale copy is served while a background fetch refreshes it.
    assert varnish.get("/category/world/").text == "old"
    assert wait_until(lambda: varnish.get("/category/world/").text == "new")


def test_purge_refused_outside_the_acl(origin):
    # Same VCL, ACL narrowed to 127.0.0.1 only: a purger on 127.0.0.2 is outside it.
    edge = Varnish(origin.port, purgers=["127.0.0.1"]).start()
    try:
        origin.page("/api/articles/1/", "cached", tags=["article:1"])
        edge.get("/api/articles/1/")

        conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=5, source_address=("127.0.0.2", 0))
        conn.request("PURGE", "/", headers={"xkey": "article:1"})
        refused = conn.getresponse()
        conn.close()
        assert refused.status == 405
        assert edge.get("/api/articles/1/").headers["X-Cache-Edge"] == "HIT"

        VarnishBackend(alias="edge", params={"LOCATION": edge.url}).purge_tags(["article:1"])
        assert edge.get("/api/articles/1/").headers["X-Cache-Edge"] == "MISS"
    finally:
        edge.close()


def test_query_strings_normalised(origin, varnish):
    origin.page("/api/search/?page=2&q=rust", "results")

    first = varnish.get("/api/search/?utm_source=x&q=rust&page=2&fbclid=abc")
    variants = [
        "/api/search/?page=2&q=rust",
        "/api/search/?q=rust&page=2",
        "/api/search/?gclid=1&page=2&utm_medium=mail&q=rust&utm_campaign=c",
    ]
    results = [varnish.get(path) for path in variants]

    assert (first.status_code, first.headers["X-Cache-Edge"]) == (200, "MISS")
    assert [r.headers["X-Cache-Edge"] for r in results] == ["HIT", "HIT", "HIT"]
    assert origin.requests == ["/api/search/?page=2&q=rust"]  # the app saw one normalised URL


def test_cookies_ignored_on_public_paths_but_private_paths_never_cached(origin, varnish):
    origin.page("/articles/a/", "public page", headers={"Set-Cookie": "csrftoken=x; Path=/"})
    origin.page("/admin/", "admin", cache_control="public, s-maxage=300")
    origin.page("/api/user/profile/", "me", cache_control="public, s-maxage=300")
    origin.page("/api/articles/1/", "detail", tags=["article:1"])

    varnish.get("/articles/a/", cookies={"sessionid": "abc"})
    again = varnish.get("/articles/a/", cookies={"sessionid": "def"})
    assert again.headers["X-Cache-Edge"] == "HIT"
    assert "Set-Cookie" not in again.headers

    for path in ("/admin/", "/api/user/profile/"):
        varnish.get(path)
        assert varnish.get(path).headers["X-Cache-Edge"] == "MISS"
    assert origin.hits("/admin/") == 2 and origin.hits("/api/user/profile/") == 2

    varnish.get("/api/articles/1/")
    authorized = varnish.get("/api/articles/1/", headers={"Authorization": "Token abc"})
    assert authorized.headers["X-Cache-Edge"] == "MISS"  # passed to the app, not served from cache

    # A private answer on a public path is never stored; files (/static/, /media/) are the same
    # for every reader: kept, whatever cookies come with the request (issue 32).
    origin.page("/api/articles/2/", "private", cache_control="private, no-store")
    origin.page("/static/app.css", "css", cache_control="public, max-age=600")
    origin.page("/media/heroes/x/400w.0123456789ab.webp", "img", cache_control="public, max-age=31536000, immutable")
    for _ in range(2):
        varnish.get("/api/articles/2/")
        varnish.get("/static/app.css", cookies={"sessionid": "abc"})
        varnish.get("/media/heroes/x/400w.0123456789ab.webp", cookies={"sessionid": "abc"})
    assert origin.hits("/api/articles/2/") == 2 and origin.hits("/static/app.css") == 1
    assert origin.hits("/media/heroes/x/400w.0123456789ab.webp") == 1


def test_stale_if_error_and_fresh_fetch_after_the_revalidate_window(origin, varnish):
    policy = "public, max-age=0, s-maxage=1, stale-while-revalidate=1, stale-if-error=300"
    origin.page("/api/articles/5/", "v1", tags=["article:5"], cache_control=policy)
    varnish.get("/api/articles/5/")
    time.sleep(2.2)  # past s-maxage and stale-while-revalidate

    origin.failing = True
    stale = varnish.get("/api/articles/5/")
    assert (stale.status_code, stale.text) == (200, "v1")  # stale-if-error covers it

    origin.failing = False
    origin.page("/api/articles/5/", "v2", tags=["article:5"], cache_control=policy)
    time.sleep(2.2)
    fresh = varnish.get("/api/articles/5/")
    assert (fresh.status_code, fresh.text) == (200, "v2")  # healthy origin: no stale past the window


def test_ops_endpoints_are_not_served_through_the_edge(origin, varnish):
    """Issue 28.7: /health/, /health/cache/ and /metrics stay on the app's port (the operator's
    network); through the edge they are a 404 that never reaches the origin. The canary's public
    route is passed on as before."""
    for path in ("/health/", "/health/cache/", "/metrics", "/health", "/metrics?x=1"):
        origin.page(path, "internals")
        assert varnish.get(path).status_code == 404, path
        assert origin.hits(path) == 0, path
    origin.page("/health/canary/", "42")
    assert varnish.get("/health/canary/").text == "42"


def test_a_clients_canary_probe_header_never_reaches_the_origin(origin, varnish):
    """Issue 28.9: X-Canary-Probe (newsite/ops/canary.py) changes what the app answers (it adds
    X-Served-By, no-store); the canary sends it to the app's port, never through the edge, so the
    edge drops it from clients: their requests reach the origin as anyone's."""
    origin.page("/api/breaking-news/", "breaking")
    response = varnish.get("/api/breaking-news/", headers={"X-Canary-Probe": "1", "X-Other": "kept"})
    assert response.status_code == 200 and response.text == "breaking"
    [(_, headers)] = [seen for seen in origin.headers_seen if seen[0] == "/api/breaking-news/"]
    names = {name.lower() for name in headers}
    assert "x-canary-probe" not in names and "x-other" in names, headers


def test_a_redirect_without_cache_control_is_never_stored(origin, varnish):
    """Issue 28.11: Django's HTTPS redirect (SECURE_SSL_REDIRECT, for a request that reached the
    edge without X-Forwarded-Proto) has no Cache-Control; Varnish's default would keep it 120 s
    for every reader of the URL. An explicitly cacheable redirect is kept as before."""
    origin.page("/api/articles/", "", cache_control=None, status=301,
                headers={"Location": "https://news.example.com/api/articles/"})
    for _ in range(3):
        assert varnish.get("/api/articles/", allow_redirects=False).status_code == 301
    assert origin.hits("/api/articles/") == 3
    origin.page("/api/categories/", "", status=301, headers={"Location": "/api/categories/x/"})
    for _ in range(3):
        assert varnish.get("/api/categories/", allow_redirects=False).status_code == 301
    assert origin.hits("/api/categories/") == 1
