"""What one client can make the origin do (issue 28.2, 28.3): counted views, uncached reads, deep
pages and search cost, each bounded per client or per request.

The suite exempts loopback (Makefile TEST_ENV THROTTLE_EXEMPT): these tests name other clients
(REMOTE_ADDR, or X-Forwarded-For behind proxies) from the documentation ranges, to which no
traffic is ever sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from django.db import OperationalError, connection, connections
from django.test import Client

import caching
from articles import counters, selectors
from articles.models import Article
from newsite import throttle
from tests.articles.reader_process import start_reader, stop_reader
from tests.factories import make_article
from tests.support import free_port, wait_until

HOSTILE, OTHER = "198.51.100.7", "198.51.100.8"


@pytest.fixture
def budgets(settings):
    settings.THROTTLE = {"public_miss": "3/60", "views": "30/60"}
    settings.THROTTLE_EXEMPT = ["127.0.0.0/8", "::1"]
    settings.VIEW_DEDUPE_SECONDS = 600
    return settings


def _post_view(article_id: int, address: str, **headers):
    return Client().post(f"/api/articles/{article_id}/views/", REMOTE_ADDR=address, **headers)


def _pending(article_id: int) -> int:
    from articles import keys
    from caching import engine

    raw = engine.redis_client().hget(keys.views_pending_key(), str(article_id))
    return int(raw or 0)


# --- counted views (28.2) ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_client_counts_one_view_per_article_per_window(budgets):
    article = make_article()
    for _ in range(5):
        assert _post_view(article.id, HOSTILE).status_code == 204
    assert _post_view(article.id, OTHER).status_code == 204
    assert _pending(article.id) == 2
    budgets.VIEW_DEDUPE_SECONDS = 0  # off: every POST counts
    assert _post_view(article.id, HOSTILE).status_code == 204
    assert _pending(article.id) == 3


@pytest.mark.django_db(transaction=True)
def test_a_parallel_flood_of_view_posts_counts_once_and_spends_the_budget_exactly(budgets):
    """100 POSTs from one client on 4 threads: the budget (30 a minute) lets exactly 30 through,
    the rest are 429 with Retry-After and the API's JSON error; one view is counted (before:
    100 counted, no 429)."""
    article = make_article()
    statuses: Counter = Counter()
    retry_afters: set = set()
    errors: list = []
    lock = threading.Lock()

    def flood():
        try:
            for _ in range(25):
                response = _post_view(article.id, HOSTILE)
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 429:
                        retry_afters.add(int(response["Retry-After"]))
                        errors.append(json.loads(response.content)["error"])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == {204: 30, 429: 70}
    assert set(errors) == {"throttled"} and all(1 <= r <= 60 for r in retry_afters)
    assert counters.flush_view_counts() == 1
    article.refresh_from_db()
    assert article.view_count == 1
    assert _post_view(article.id, OTHER).status_code == 204  # another client has its own budget


@pytest.mark.django_db(transaction=True)
def test_cross_site_view_posts_are_refused(budgets, settings):
    article = make_article()
    settings.CSRF_TRUSTED_ORIGINS = ["https://www.example.com"]
    refused = [
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_ORIGIN": "https://attacker.example"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_ORIGIN": "https://testserver"},  # another scheme is another origin
    ]
    for headers in refused:
        response = _post_view(article.id, HOSTILE, **headers)
        assert response.status_code == 403, headers
        assert json.loads(response.content)["error"] == "permission_denied"
    allowed = [
        {},  # no browser metadata (curl, an app): the budget bounds it
        {"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "http://testserver"},
        {"HTTP_ORIGIN": "https://www.example.com"},  # CSRF_TRUSTED_ORIGINS
    ]
    for n, headers in enumerate(allowed):
        assert _post_view(article.id, f"192.0.2.{n + 10}", **headers).status_code == 204, headers
    assert _pending(article.id) == len(allowed)




@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redis_down_view_posts_cost_one_update_per_second_not_one_per_post():
    """A second process whose Redis is unreachable: 100 view POSTs from 100 clients are counted in
    the process and written in one statement at most every LOCAL_FLUSH_SECONDS (before: 100
    UPDATEs of the same row, one per POST). Nothing is lost: a timer writes what is pending even
    when no POST follows; a repeated client within the window is not counted twice."""
    article = make_article()
    proc, request = start_reader(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", THROTTLE_EXEMPT="")
    try:
        started = time.monotonic()
        replies = [request(f"/api/articles/{article.id}/views/", "POST", f"192.0.2.{n % 250 + 1}")
                   for n in range(100)]
        elapsed = time.monotonic() - started
        assert [r["status"] for r in replies] == [204] * 100
        updates = sum(r["updates"] for r in replies)  # those the requests ran (the timer: one a second)
        assert updates <= 2 + elapsed / counters.LOCAL_FLUSH_SECONDS, (updates, elapsed)
        assert request(f"/api/articles/{article.id}/views/", "POST", "192.0.2.1")["status"] == 204  # a repeat

        def written():
            article.refresh_from_db()
            return article.view_count == 100

        assert wait_until(written, timeout=10), article.view_count  # no further POST needed
    finally:
        stop_reader(proc)


# --- uncached reads (28.3) ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_uncached_reads_are_rate_limited_per_client_and_hits_are_free(budgets):
    for n in range(5):
        make_article(title=f"Story {n}")
    Client().get("/api/articles/")  # page 1 in the tiers (an exempt client)
    hostile = Client(REMOTE_ADDR=HOSTILE)
    for _ in range(20):
        hit = hostile.get("/api/articles/")
        assert hit.status_code == 200 and hit["X-Cache"] in ("HIT-L1", "HIT-L2")
    for page in (2, 3, 4):  # three misses: the budget
        assert hostile.get(f"/api/articles/?page={page}").status_code in (200, 404)
    refused = hostile.get("/api/articles/?page=5")
    assert refused.status_code == 429
    body = json.loads(refused.content)
    assert body["error"] == "throttled" and "Retry-After" in body["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["Cache-Control"] == "no-store" and "Surrogate-Key" not in refused
    assert hostile.get("/api/articles/").status_code == 200  # hits still answer
    assert Client(REMOTE_ADDR=OTHER).get("/api/articles/?page=5").status_code in (200, 404)  # its own budget
    html = hostile.get("/category/none-such/")  # HTML pages share the budget
    assert html.status_code == 429


@pytest.mark.django_db(transaction=True)
def test_a_parallel_flood_of_uncached_reads_gets_exactly_the_budget(budgets):
    budgets.THROTTLE = {"public_miss": "10/60", "views": "off"}
    make_article()
    statuses: Counter = Counter()
    lock = threading.Lock()

    def flood(first: int):
        client = Client(REMOTE_ADDR=HOSTILE)
        try:
            for page in range(first, first + 10):
                code = client.get(f"/api/search/?q=word{page}").status_code
                with lock:
                    statuses[code] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flood, args=(1 + 10 * n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses[429] == 30 and sum(statuses.values()) == 40, statuses


def test_client_address_is_the_first_untrusted_hop_from_the_right(settings, rf):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "127.0.0.0/8"]

    def client(remote, forwarded=None):
        extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
        return throttle.client_address(rf.get("/", REMOTE_ADDR=remote, **extra))

    # nginx (10.0.0.1) then Varnish (10.0.0.2): what the client wrote (203.0.113.66) is never reached.
    assert client("10.0.0.2", "203.0.113.66, 198.51.100.7, 10.0.0.1") == "198.51.100.7"
    assert client("10.0.0.2", "198.51.100.7") == "198.51.100.7"  # Varnish alone
    assert client("198.51.100.9", "203.0.113.66") == "198.51.100.9"  # a peer not ours: its header is ignored
    assert client("192.0.2.9") == "192.0.2.9"  # straight to the app
    assert client("127.0.0.1", "10.0.0.7") == "10.0.0.7"  # only our hosts: the leftmost
    assert client("10.0.0.2", "junk!, 198.51.100.7") == "198.51.100.7"
    assert client("10.0.0.2", "junk!") == "junk!"  # no address: keyed as text (hashed in Redis)
    # One IPv6 host owns a /64: every address in it is one client; IPv4-mapped is IPv4.
    assert client("2001:db8:1:2::10") == client("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client("10.0.0.2", "::ffff:198.51.100.7") == "198.51.100.7"
    settings.THROTTLE_EXEMPT = ["2001:db8::/32", "192.0.2.0/24"]
    assert throttle.exempt("2001:db8:1:2::/64") and throttle.exempt("192.0.2.9") and not throttle.exempt("198.51.100.7")


@pytest.mark.django_db(transaction=True)
def test_an_ipv6_host_has_one_budget(budgets):
    statuses = Counter(Client(REMOTE_ADDR=f"2001:db8:5:6::{n:x}").get(f"/api/search/?q=v6w{n}").status_code
                       for n in range(1, 9))
    assert statuses[429] == 5, statuses  # a budget of 3, not one per address


def test_bad_budget_settings_fail_the_system_check(settings):
    from newsite.ops.checks import check_client_budgets

    settings.THROTTLE = {"public_miss": "100/min", "views": "off"}
    settings.TRUSTED_PROXIES = ["10.0.0.0/33"]
    ids = [e.id for e in check_client_budgets()]
    assert ids == ["ops.E002", "ops.E002"]
    settings.THROTTLE = {"public_miss": "120/60", "views": "60/60"}
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert check_client_budgets() == []


@pytest.mark.django_db
def test_the_search_time_limit_ends_with_its_block_inside_a_transaction():
    from django.db import transaction

    with transaction.atomic():
        with selectors._time_limit("default", 500), connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "500ms"
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"


# --- bounded cost per request (28.3) -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/articles/?page=251", "/api/search/?q=news&page=51",
                                  "/api/categories/world/articles/?page=251"])
def test_deep_pages_are_a_400(path):
    response = Client().get(path)
    assert response.status_code == 400
    assert json.loads(response.content)["error"] == "invalid"


@pytest.mark.django_db
def test_deep_html_pages_are_a_400():
    assert Client().get("/?page=251").status_code == 400
    assert Client().get("/?page=250").status_code in (200, 404)


@pytest.mark.django_db
def test_search_ranks_only_the_newest_candidates(monkeypatch):
    for n in range(5):
        make_article(title=f"Harbour story {n}")
    monkeypatch.setattr(selectors, "SEARCH_CANDIDATES", 3)
    found = selectors.search(q="harbour", page=1)["results"]
    newest = list(Article.objects.order_by("-published_at", "-id").values_list("title", flat=True)[:3])
    assert sorted(a["title"] for a in found) == sorted(newest)


@pytest.mark.django_db
def test_a_search_statement_past_its_time_limit_is_cancelled():
    with pytest.raises(OperationalError) as raised:
        with selectors._time_limit("default", 50), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")
    assert raised.value.__cause__.sqlstate == "57014"
    with connection.cursor() as cursor:  # the limit ended with its block
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_search_is_a_503_with_retry_after(monkeypatch):
    def slow_search(*, q, page):
        with selectors._time_limit("default", 50), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")

    monkeypatch.setattr(selectors, "search", slow_search)
    caching.invalidate_tags(["search"])
    response = Client().get("/api/search/?q=anything-slow")
    assert response.status_code == 503
    assert json.loads(response.content)["error"] == "timeout"
    assert int(response["Retry-After"]) > 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_behind_the_edge_the_client_is_who_the_outer_proxy_saw_and_a_429_is_never_stored(live_server, settings):
    """nginx (played by this test, writing X-Forwarded-For) then Varnish then the app (both on
    loopback, a TRUSTED_PROXIES network): a client over its budget gets a 429 that Varnish does
    not keep - another client asking the same URL gets the page - and a window later it is served
    again."""
    from tests.cdn.servers import Varnish

    settings.THROTTLE = {"public_miss": "2/2", "views": "off"}
    settings.THROTTLE_EXEMPT = []
    settings.TRUSTED_PROXIES = ["127.0.0.0/8", "::1/128"]
    for n in range(3):
        make_article(title=f"Edge story {n}")
    varnish = Varnish(int(live_server.url.rsplit(":", 1)[1])).start()
    try:
        def get(path, client):
            return varnish.get(path, headers={"X-Forwarded-For": client})

        assert get("/api/search/?q=edge", HOSTILE).status_code == 200
        assert get("/api/search/?q=story", HOSTILE).status_code == 200
        refused = get("/api/search/?q=headline", HOSTILE)
        assert refused.status_code == 429 and refused.json()["error"] == "throttled"
        other = get("/api/search/?q=headline", OTHER)  # the same URL through the same edge
        assert other.status_code == 200 and "results" in other.json()
        spoofed = varnish.get("/api/search/?q=forged", headers={"X-Forwarded-For": f"{OTHER}, {HOSTILE}"})
        assert spoofed.status_code == 429  # what the client wrote left of nginx's entry is ignored
        time.sleep(2.2)  # the window ends
        assert get("/api/search/?q=after", HOSTILE).status_code == 200
    finally:
        varnish.close()


@pytest.mark.django_db(transaction=True)
def test_warm_cache_is_never_charged(settings):
    """warm_cache's in-process client (hundreds of misses on a deploy) carries the INTERNAL environ
    key: with no address exempt and a budget of 1, every page still warms."""
    from articles.warm import warm_cache

    settings.THROTTLE = {"public_miss": "1/60", "views": "off"}
    settings.THROTTLE_EXEMPT = []
    for n in range(3):
        make_article(title=f"Warm story {n}")
    report = warm_cache()
    assert report["paths"] > 5
    assert set(report["by_status"]) <= {"200", "404"} and "429" not in report["by_status"], report["by_status"]


@pytest.mark.django_db(transaction=True)
def test_a_flooding_client_never_hands_its_429_to_others_reading_the_same_url(budgets):
    """8 threads of one client over its budget flood a URL that is a miss every time (a 404 with a
    foreign parameter: never stored); 100 other clients ask the same URL in the same process
    meanwhile. A single-flight follower of a refused leader loads for itself: none gets a 429
    (issue 28 review: 83 of 300 did when followers shared the leader's refusal)."""
    budgets.THROTTLE = {"public_miss": "1/60", "views": "off"}
    make_article()
    url = "/api/articles/99999999/?junk=1"
    stop = threading.Event()

    def flood():
        client = Client(REMOTE_ADDR=HOSTILE)
        try:
            while not stop.is_set():
                client.get(url)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        codes = Counter(Client(REMOTE_ADDR=f"192.0.2.{n + 1}").get(url).status_code for n in range(100))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert codes == {404: 100}, codes
