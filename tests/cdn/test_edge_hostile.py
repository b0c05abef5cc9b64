"""Hostile requests through the real edge (deploy/varnish/default.vcl in varnishd) in front of
the real newsite (live_server: the real middleware and tiers), issue 16:

- 16.1 `format`/`Accept` variants never change what the next reader gets from the edge;
- 16.4 cache busters leave the edge's object count flat, the routes' own parameters still vary it;
  one-off searches and 404s (user input, first sight) leave no object either;
- 16.5 /api/docs/ (the visitor's CSRF token inside) is never shared-cached.
"""

import re
import subprocess
import time
from datetime import timedelta

import pytest
import requests
from django.middleware.csrf import _unmask_cipher_token

from articles.models import Comment
from tests.cdn.servers import Varnish
from tests.factories import make_article, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def edge(live_server):
    varnish = Varnish(int(live_server.url.rsplit(":", 1)[1])).start()
    yield varnish
    varnish.close()


def n_object(varnish) -> int:
    out = subprocess.run(
        ["varnishstat", "-n", str(varnish.workdir / "n"), "-1", "-f", "MAIN.n_object"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout
    return int(out.split()[1])


def settled_n_object(varnish, *, at_most: int | None = None) -> int:
    """MAIN.n_object once the 1 s hit-for-miss markers have expired: after 1.5 s, or as soon
    as it is down to `at_most` (polled, up to 10 s)."""
    if at_most is None:
        time.sleep(1.5)
        return n_object(varnish)
    deadline = time.monotonic() + 10
    while (count := n_object(varnish)) > at_most and time.monotonic() < deadline:
        time.sleep(0.2)
    return count


def test_one_off_searches_and_404s_leave_no_object_at_the_edge(edge):
    """User input makes these URLs: on its first sight the app keeps the answer in one L1 only
    and sends it with s-maxage=0, so Varnish keeps a 1 s hit-for-miss marker and then nothing.
    A URL asked again is admitted everywhere: the edge serves it."""
    make_article(title="Edge story", ago=timedelta(minutes=2))
    assert edge.get("/api/articles/?page=1").status_code == 200
    before = settled_n_object(edge)
    responses = [edge.get(f"/api/search/?q=junk{n}") for n in range(40)]
    responses += [edge.get(f"/api/articles/{10**8 + n}/") for n in range(40)]
    responses += [edge.get(f"/articles/no-such-story-{n}/") for n in range(40)]
    assert {r.status_code for r in responses[:40]} == {200}
    assert {r.status_code for r in responses[40:]} == {404}
    for response in responses:
        assert response.headers["X-Cache-Edge"] == "MISS"
        assert re.search(r"\bs-maxage=0\b", response.headers["Cache-Control"]), response.headers["Cache-Control"]
    assert settled_n_object(edge, at_most=before) == before

    # Asked again: admitted to L2 (doorkeeper) and to the edge.
    for path in ("/api/search/?q=junk3", f"/api/articles/{10**8 + 3}/", "/articles/no-such-story-3/"):
        again = edge.get(path)
        assert "s-maxage=0" not in again.headers["Cache-Control"], (path, again.headers["Cache-Control"])
        assert edge.get(path).headers["X-Cache-Edge"] == "HIT", path
    assert settled_n_object(edge) == before + 3


def test_format_and_accept_variants_cannot_poison_the_edge(edge):
    article = make_article(title="Edge story", ago=timedelta(minutes=2))
    Comment.objects.create(article=article, user=make_user(), body="first")
    for path in ("/api/articles/?page=1", f"/api/articles/{article.pk}/"):
        hostile = [
            edge.get(path + "&format=xml" if "?" in path else path + "?format=x"),
            edge.get(path, headers={"Accept": "application/xml"}),
            edge.get(path, headers={"Accept": "text/html"}),
        ]
        clean = edge.get(path)
        assert clean.status_code == 200, (path, clean.status_code, clean.text[:200])
        assert "Edge story" in clean.text and clean.headers["Content-Type"].startswith("application/json")
        for response in hostile:
            assert (response.status_code, response.content) == (200, clean.content), path
        # HEAD and a gzip-accepting reader see the same entry.
        head = requests.head(edge.url + path, timeout=10)
        assert head.status_code == 200 and head.headers["Content-Type"].startswith("application/json")
        gz = edge.get(path, headers={"Accept-Encoding": "gzip"})
        assert gz.status_code == 200 and gz.content == clean.content


def test_cache_busters_leave_the_object_count_flat_and_known_params_still_vary(edge):
    for i in range(25):
        make_article(title=f"Story {i}", ago=timedelta(minutes=i + 1))
    assert edge.get("/api/articles/?page=1").status_code == 200
    # A query is kept by the shared tiers from its second sight on (caching/conf.py admission).
    assert edge.get("/api/search/?q=story").headers["Cache-Control"].endswith("s-maxage=0")
    assert edge.get("/api/search/?q=story").status_code == 200
    before = settled_n_object(edge)

    responses = [edge.get(f"/api/articles/?page=1&cb={n}") for n in range(100)]
    responses += [edge.get(f"/api/search/?cb={n}&q=story&utm_source=x{n}") for n in range(20)]
    responses += [edge.get(f"/api/articles/?format=json&page=1&_={n}") for n in range(10)]
    assert all(r.status_code == 200 for r in responses)
    assert {r.headers["X-Cache-Edge"] for r in responses} == {"HIT"}
    # Junk on paths that are not public routes is passed, never stored.
    for n in range(20):
        edge.get(f"/api/no-such-endpoint/?cb={n}")
        edge.get(f"/api/docs/?cb={n}")
    assert settled_n_object(edge, at_most=before) == before

    page2 = edge.get("/api/articles/?cb=7&page=2")
    assert page2.status_code == 200 and page2.json()["page"] == 2
    assert page2.headers["X-Cache-Edge"] == "MISS"
    assert n_object(edge) == before + 1
    assert edge.get("/api/articles/?page=2&cb=8").headers["X-Cache-Edge"] == "HIT"


def test_a_repeated_parameter_is_passed_not_reordered_into_another_readers_object(edge):
    for i in range(25):
        make_article(title=f"Story {i}", ago=timedelta(minutes=i + 1))
    first = edge.get("/api/articles/?page=2&page=1")
    second = edge.get("/api/articles/?page=1&page=2")
    assert first.json()["page"] == 1 and second.json()["page"] == 2


def test_api_docs_are_never_shared_cached(edge):
    responses = [edge.get("/api/docs/") for _ in range(3)]
    for response in responses:
        assert response.status_code == 200
        cache_control = response.headers["Cache-Control"]
        assert "private" in cache_control and "no-store" in cache_control
        assert response.headers["X-Cache-Edge"] == "MISS"
        assert "csrftoken" in response.cookies  # each visitor gets their own token
    # The visitor's own cookie reaches the app (kept on non-public routes): the page's token is
    # that visitor's secret, which a shared copy would hand to everyone.
    secret = "a" * 32
    with_cookie = edge.get("/api/docs/", cookies={"csrftoken": secret})
    masked = re.search(r'request\.headers\["[^"]+"\] = "([A-Za-z0-9]{64})"', with_cookie.text).group(1)
    assert _unmask_cipher_token(masked) == secret
