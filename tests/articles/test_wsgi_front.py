"""The front (caching/front.py, newsite/front.py), WSGI and ASGI (every test runs with each
adapter: `interface`): an L1 or L2 hit it answers is the response Django's full WSGI stack gives
for the same entry - every header, 304s, HEAD, metrics - and every request it does not
recognise reaches Django unchanged; what the WSGI front's L2 read finds but does not answer (a
miss, a negative) Django goes on from, without a second read or a leaked lease (the ASGI front's
read takes no lease: one round trip more on a miss)."""

from __future__ import annotations

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from caching import fetcher, metrics
from newsite.front import wrap
from tests.articles.test_response_cache import public_paths, world  # noqa: F401 (fixture)
from tests.wsgi_client import WSGIClient, django_wsgi_client, front_client

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["wsgi", "asgi"])
def interface(request):
    return request.param


def every_public_type(world):  # noqa: F811
    """One path per public endpoint type: the JSON API, the pages, feeds, sitemaps, robots."""
    return [*public_paths(world), "/feed/", "/feed/atom/", f"/category/{world['cat'].slug}/feed/",
            "/sitemap.xml", "/sitemap-pages.xml", "/sitemap-articles.xml?p=1", "/sitemap-news.xml",
            "/robots.txt"]


def served_by_front(client: WSGIClient, path: str, **extra):
    before = client.front.served
    response = client.get(path, **extra)
    return response, client.front.served - before == 1


def l2_hit(client: WSGIClient, path: str, **extra):
    """Django's answer for `path` from L2 (L1 emptied first; a kind admitted to L2 on its second
    sight - search, negatives - needs one more load)."""
    for _ in range(3):
        fetcher.clear_local()
        response = client.get(path, **extra)
        if response["X-Cache"] == "HIT-L2":
            return response
    raise AssertionError(f"{path}: never an L2 hit ({response['X-Cache']})")


def test_front_hits_carry_exactly_the_headers_of_the_django_stack(interface, world):  # noqa: F811
    django, front = django_wsgi_client(), front_client(interface)
    for path in every_public_type(world):
        first = django.get(path)
        assert first.status_code == 200 and first["X-Cache"] == "MISS", path
        through_django = django.get(path)
        assert through_django["X-Cache"] == "HIT-L1", path
        through_front, by_front = served_by_front(front, path)
        assert by_front, path
        assert through_front.status == through_django.status, path
        assert through_front.content == through_django.content, path
        assert through_front.header_set() == through_django.header_set(), path
        for name in ("Date", "X-Request-ID", "Age"):
            assert (name in through_front) == (name in through_django), (path, name)
        # Conditional requests and HEAD: the same 304 and the same headers without a body.
        for extra in ({"HTTP_IF_NONE_MATCH": through_django["ETag"]},
                      {"HTTP_IF_MODIFIED_SINCE": through_django["Last-Modified"]}):
            django_304 = django.get(path, **extra)
            front_304, by_front = served_by_front(front, path, **extra)
            assert by_front and front_304.status_code == django_304.status_code == 304, (path, extra)
            assert front_304.content == django_304.content == b"", path
            assert front_304.header_set() == django_304.header_set(), (path, extra)
        django_head, front_head = django.head(path), front.head(path)
        assert front_head.status == django_head.status and front_head.header_set() == django_head.header_set(), path
        # An L2 hit (L1 emptied, as a lost subscription does): the front reads L2 itself.
        through_django = l2_hit(django, path)
        fetcher.clear_local()
        through_front, by_front = served_by_front(front, path)
        assert by_front and through_front["X-Cache"] == "HIT-L2", path
        assert through_front.content == through_django.content, path
        assert through_front.header_set() == through_django.header_set(), path
        fetcher.clear_local()
        django_304 = django.get(path, HTTP_IF_NONE_MATCH=through_django["ETag"])
        fetcher.clear_local()
        front_304, by_front = served_by_front(front, path, HTTP_IF_NONE_MATCH=through_django["ETag"])
        assert by_front and front_304.status_code == django_304.status_code == 304, path
        assert front_304.header_set() == django_304.header_set(), path
        assert served_by_front(front, path)[0]["X-Cache"] == "HIT-L1", path  # backfilled


def test_request_ids_follow_the_django_rule(interface, world):  # noqa: F811
    django, front = django_wsgi_client(), front_client(interface)
    path = f"/api/articles/{world['article'].id}/"
    django.get(path)
    for client_id in ("trace-42.a:b", "bad id with spaces", "x" * 200):
        expected = django.get(path, HTTP_X_REQUEST_ID=client_id)["X-Request-ID"]
        answered, by_front = served_by_front(front, path, HTTP_X_REQUEST_ID=client_id)
        assert by_front
        if expected == client_id:
            assert answered["X-Request-ID"] == client_id
        else:  # a fresh uuid4 on both paths
            assert answered["X-Request-ID"] != client_id and len(answered["X-Request-ID"]) == 36
    assert front.get(path)["X-Request-ID"] != front.get(path)["X-Request-ID"]


@override_settings(SECURE_HSTS_SECONDS=3600, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_hsts_only_over_https_as_django_does(interface, world):  # noqa: F811
    django, front = django_wsgi_client(), front_client(interface)
    path = f"/api/articles/{world['article'].id}/"
    django.get(path)
    for extra in ({}, {"HTTP_X_FORWARDED_PROTO": "https"}):
        expected = django.get(path, **extra)
        answered, by_front = served_by_front(front, path, **extra)
        assert by_front and answered.header_set() == expected.header_set(), extra
    assert "Strict-Transport-Security" in answered and "Strict-Transport-Security" not in front.get(path)


def test_what_the_front_does_not_recognise_reaches_django(interface, world):  # noqa: F811
    django, front = django_wsgi_client(), front_client(interface)
    article = f"/api/articles/{world['article'].id}/"
    django.get(article)
    django.get("/api/articles/")
    django.get("/api/articles/987654/")  # a cached 404
    cases = [
        ("GET", article + "?utm_source=x", {}),          # a parameter outside the key
        ("GET", "/api/articles/?page=abc", {}),          # a bad value: 400 from the view
        ("GET", "/api/articles/987654/", {}),            # a cached negative
        ("GET", article, {"HTTP_X_EDGE_FETCH": "1"}),    # edge fetches start at L2
        ("GET", article, {"HTTP_COOKIE": "sessionid=x"}),  # a cookie a middleware answers
        ("GET", article, {"HTTP_COOKIE": "csrftoken=bad"}),
        ("GET", article, {"HTTP_HOST": "evil.example"}),  # 400 DisallowedHost
        ("POST", "/api/articles/", {}),
        ("OPTIONS", article, {}),
        ("GET", "/api/articles", {}),                    # APPEND_SLASH redirect
        ("GET", "/static/nothing.css", {}),
        ("GET", "/api/user/profile/", {}),               # not a public view
    ]
    for method, path, extra in cases:
        before = front.front.served
        expected = django.request(method, path, **extra)
        answered = front.request(method, path, **extra)
        assert front.front.served == before, (method, path, extra)
        assert answered.status_code == expected.status_code, (method, path, extra)
        varying = ("date", "x-request-id", "age", "set-cookie")  # a new CSRF cookie for a bad one
        assert answered.header_set(ignore_values=varying) == expected.header_set(ignore_values=varying), \
            (method, path, extra)
    # Parameters of the key, in another order or spelling, share the entry (as in Django).
    django.get("/api/search/?q=cached&page=1")
    for query in ("?page=1&q=cached", "?q=%20cached%20", "?q=cached&page=01"):
        assert served_by_front(front, "/api/search/" + query)[1], query
    # A miss: Django loads it (going on from the front's L2 read).
    answered, by_front = served_by_front(front, "/api/articles/?page=2")
    assert not by_front and answered.status_code == 200 and answered["X-Cache"] == "MISS"
    # A cached negative in L2 only: the front's L2 read finds it, Django answers it.
    expected = l2_hit(django, "/api/articles/987654/")
    fetcher.clear_local()
    answered, by_front = served_by_front(front, "/api/articles/987654/")
    assert not by_front and answered.status_code == expected.status_code == 404
    assert answered.header_set() == expected.header_set() and answered["X-Cache"] == "HIT-L2"
    # A cookie nobody reads does not keep the front from answering.
    assert served_by_front(front, article, HTTP_COOKIE="_ga=GA1.2.3")[1]


@pytest.mark.parametrize("tier", ["HIT-L1", "HIT-L2"])
def test_metrics_count_a_front_hit_as_the_django_path_does(interface, world, tier):  # noqa: F811
    django, front = django_wsgi_client(), front_client(interface)
    path = f"/api/articles/{world['article'].id}/"
    django.get(path)
    stats = metrics.stats_for("resp.api-article")
    from_l2 = tier == "HIT-L2"  # L1 emptied before each request (as a lost subscription does)

    def counts():
        metrics.flush_all()
        return (stats.l1_hit, stats.l1_miss, stats.l2_hit,
                REGISTRY.get_sample_value("newsite_cache_requests_total", {
                    "tier": "l2" if from_l2 else "l1", "prefix": "resp.api-article", "result": "hit"}) or 0,
                REGISTRY.get_sample_value("newsite_http_responses_total",
                                          {"endpoint": "api-article", "x_cache": tier}) or 0,
                REGISTRY.get_sample_value("newsite_http_request_duration_seconds_count",
                                          {"endpoint": "api-article", "method": "GET", "status": "2xx"}))

    if from_l2:
        fetcher.clear_local()
    start = counts()
    assert django.get(path)["X-Cache"] == tier
    after_django = counts()
    if from_l2:
        fetcher.clear_local()
    assert served_by_front(front, path)[1]
    after_front = counts()
    assert [b - a for a, b in zip(start, after_django, strict=True)] == [b - a for a, b in zip(after_django, after_front, strict=True)]
    assert [b - a for a, b in zip(start, after_django, strict=True)] == ([0, 1, 1, 1, 1, 1] if from_l2 else [1, 0, 0, 1, 1, 1])


def test_a_miss_through_the_front_costs_two_round_trips_and_leaves_no_lease(interface, world):  # noqa: F811
    """The WSGI front's L2 read is the fetch's: Django goes on from it (SET NX GET, then the
    fill), and a read Django did not use gives its lease back. The ASGI front's read is a GET
    without a lease, then Django's fetch reads again: 3 commands, no lease left either."""
    import redis
    from django.conf import settings

    from caching import keys
    from tests.caching.test_hit_cost import Monitor

    class Server:
        @staticmethod
        def client():
            return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])

    front = front_client(interface)
    path = "/api/articles/?page=3"
    with Monitor(Server) as monitor:
        answered, by_front = served_by_front(front, path)
    assert not by_front and answered["X-Cache"] == "MISS"
    # The commands about this key (MONITOR also shows other processes' on the shared server).
    sent = [c.split(" ", 1)[0].strip('"').upper() for c in monitor.sent if "resp.api-articles:page=3" in c]
    if interface == "asgi":
        assert sent.count("GET") == 1 and sent.count("SET") == 1 and sent.count("EVALSHA") == 1, monitor.sent
        assert len(sent) == 3, monitor.sent
    else:
        assert sent.count("SET") == 1 and sent.count("EVALSHA") == 1 and len(sent) == 2, monitor.sent
    assert served_by_front(front, path)[1]  # stored: the next request is a front hit
    if interface == "asgi":
        return  # the rest is the WSGI front's handing on of its leasing read
    # A read the application behind does not use (here an application that answers without
    # fetching; in Django, a middleware answering first or a single-flight follower) gives its
    # lease back: the key is not left leased for LEASE_TTL.
    from caching.early_read import EarlyRead
    from caching.front import ResponseFront

    handed = []

    def ignores_it(environ, start_response):
        handed.append(EarlyRead.stored(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"not fetched"]

    cold = f"/api/articles/{world['article'].id}/"
    fetcher.clear_local()
    vkey = keys.value_key(fetcher.current().namespace, f"resp.api-article:article_id={world['article'].id}")
    Server.client().delete(vkey)
    list(ResponseFront(ignores_it)({"REQUEST_METHOD": "GET", "PATH_INFO": cold, "QUERY_STRING": "",
                                    "SERVER_NAME": "testserver", "SERVER_PORT": "80", "wsgi.url_scheme": "http"},
                                   lambda status, headers: None))
    assert handed and handed[0] is not None and handed[0].raw is None  # it took the lease, then gave it back
    assert Server.client().get(vkey) is None


def test_invalidation_reaches_the_front(interface, world, django_capture_on_commit_callbacks):  # noqa: F811
    from articles import services

    front = front_client(interface)
    article = world["article"]
    path = f"/api/articles/{article.id}/"
    front.get(path)
    assert served_by_front(front, path)[1]
    with django_capture_on_commit_callbacks(execute=True):
        services.article_update(article=article, data={"title": "Edited title"})
    answered, by_front = served_by_front(front, path)
    assert not by_front and answered.json()["title"] == "Edited title" and answered["X-Cache"] == "MISS"
    answered, by_front = served_by_front(front, path)
    assert by_front and answered.json()["title"] == "Edited title"
    fetcher.clear_local()  # L1 gone (a lost subscription clears it): the front answers from L2
    answered, by_front = served_by_front(front, path)
    assert by_front and answered["X-Cache"] == "HIT-L2" and answered.json()["title"] == "Edited title"


def test_switch_and_unknown_middleware_turn_the_front_off(interface, world, settings):  # noqa: F811
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    from newsite.front import wrap_asgi

    def wrapped():  # the same rules for both adapters
        return wrap_asgi(ASGIHandler()) if interface == "asgi" else wrap(WSGIHandler())

    with override_settings(CACHE_WSGI_FRONT=False):
        assert "CACHE_WSGI_FRONT" in wrapped().front_off_reason
    with override_settings(MIDDLEWARE=["django.middleware.gzip.GZipMiddleware", *settings.MIDDLEWARE]):
        assert "GZipMiddleware" in wrapped().front_off_reason
    with override_settings(MIDDLEWARE=settings.MIDDLEWARE[:-1]):
        assert "not last" in wrapped().front_off_reason
