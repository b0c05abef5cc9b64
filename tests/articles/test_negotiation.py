"""Content negotiation cannot poison a public key (issue 16.1): `format`, `Accept`, HEAD and
Accept-Encoding either leave the response as it is (so the shared key holds) or are never cached.
Through the real middleware and tiers (L1 + L2), and through the WSGI front (`make_client`)."""

from datetime import timedelta

import pytest

from articles.models import Comment
from tests.factories import make_article, make_user

pytestmark = pytest.mark.django_db

HOSTILE = [
    {"QUERY_STRING_EXTRA": "format=xml"},
    {"QUERY_STRING_EXTRA": "format=api"},
    {"QUERY_STRING_EXTRA": "format=x"},
    {"HTTP_ACCEPT": "application/xml"},
    {"HTTP_ACCEPT": "text/html"},
    {"HTTP_ACCEPT": "application/x-nonsense; q=1.0"},
]


def _get(client, path, variant):
    extra = dict(variant)
    suffix = extra.pop("QUERY_STRING_EXTRA", None)
    if suffix:
        path += ("&" if "?" in path else "?") + suffix
    return client.get(path, **extra)


@pytest.mark.parametrize("variant", HOSTILE, ids=lambda v: next(iter(v.values())))
def test_a_negotiation_variant_never_changes_what_the_next_reader_gets(variant, make_client):
    article = make_article(title="Negotiated", ago=timedelta(minutes=3))
    Comment.objects.create(article=article, user=make_user(), body="hi")
    paths = ["/api/articles/?page=1", "/api/articles/?page=42", f"/api/articles/{article.pk}/",
             f"/api/authors/{article.author_id}/"]
    for path in paths:
        hostile = _get(make_client(), path, variant)
        # The API has one representation: JSON, whatever the client asked for.
        assert hostile["Content-Type"].startswith("application/json"), (path, hostile.status_code)
        clean = make_client().get(path)
        assert clean.status_code == 200, (path, variant, clean.status_code, clean.content[:200])
        assert hostile.status_code == clean.status_code, (path, variant)
        assert hostile.content == clean.content, (path, variant)


def test_format_404_is_not_stored_as_the_clean_keys_negative(make_client):
    make_article(title="Only one", ago=timedelta(minutes=3))
    # Before the fix: DRF raised 404 for an unknown format and the middleware cached it under
    # the clean key of page 1.
    make_client().get("/api/articles/?page=1&format=xml")
    response = make_client().get("/api/articles/?page=1")
    assert response.status_code == 200
    assert response.json()["results"][0]["title"] == "Only one"


def test_head_and_accept_encoding_share_the_get_entry(make_client):
    make_article(title="Heads", ago=timedelta(minutes=3))
    head = make_client().head("/api/articles/")
    assert head.status_code == 200 and head.content == b""
    gzip = make_client().get("/api/articles/", HTTP_ACCEPT_ENCODING="gzip")
    plain = make_client().get("/api/articles/")
    assert plain.status_code == 200 and plain.json()["results"][0]["title"] == "Heads"
    assert "Accept-Encoding" in plain["Vary"]
    assert gzip["Content-Type"] == plain["Content-Type"]


def test_a_404_with_a_parameter_outside_the_key_is_answered_but_never_stored(make_client):
    missing = "/api/articles/987654/"
    foreign = make_client().get(missing + "?format=xml")
    assert foreign.status_code == 404 and foreign["Content-Type"].startswith("application/json")
    assert foreign["Cache-Control"] == "private, no-store"
    clean = make_client().get(missing)
    assert clean.status_code == 404 and clean["X-Cache"] == "MISS"  # nothing was stored before
    assert make_client().get(missing)["X-Cache"].startswith("HIT")
