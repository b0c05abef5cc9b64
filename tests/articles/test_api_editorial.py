"""Editorial API: staff by session or DRF token; everyone else 401/403."""

import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from articles.models import Article
from tests.articles.conftest import grant
from tests.factories import make_article, make_author, make_category, make_user
from tests.support import wait_until

pytestmark = pytest.mark.django_db

# The fixtures editor and token_client (and grant): tests/articles/conftest.py.


def test_create_publish_edit_delete_with_token(token_client):
    cat = make_category(name="Science")
    response = token_client.post(
        "/api/articles/", {"title": "Comet seen", "body": "Bright.", "category_id": cat.id, "status": "published"}, format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["slug"] == "comet-seen" and created["version"] == 1 and created["published_at"]
    article_id = created["id"]
    assert APIClient().get(f"/api/articles/{article_id}/").json()["title"] == "Comet seen"

    response = token_client.patch(f"/api/articles/{article_id}/", {"title": "Comet seen again"}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 2
    assert Article.objects.get(pk=article_id).title == "Comet seen again"

    assert token_client.delete(f"/api/articles/{article_id}/").status_code == 204
    assert not Article.objects.filter(pk=article_id).exists()
    assert token_client.delete(f"/api/articles/{article_id}/").status_code == 404


def test_session_staff_can_write(editor):
    client = APIClient()
    client.force_login(editor)
    cat = make_category()
    response = client.post("/api/articles/", {"title": "Via session", "category_id": cat.id}, format="json")
    assert response.status_code == 201


def test_drf_create_token_command(editor, capsys):
    call_command("drf_create_token", "editor")
    assert Token.objects.filter(user=editor).exists()


def test_anonymous_and_non_staff_are_refused():
    cat = make_category()
    article = make_article(category=cat)
    body = {"title": "Nope", "category_id": cat.id}
    anonymous = APIClient()
    assert anonymous.post("/api/articles/", body, format="json").status_code == 401
    assert anonymous.patch(f"/api/articles/{article.id}/", {"title": "x"}, format="json").status_code == 401
    assert anonymous.delete(f"/api/articles/{article.id}/").status_code == 401
    reader = APIClient()
    reader.force_authenticate(make_user())
    assert reader.post("/api/articles/", body, format="json").status_code == 403
    assert reader.delete(f"/api/articles/{article.id}/").status_code == 403
    assert Article.objects.filter(pk=article.id).exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": "No category"},
        {"title": "Bad category", "category_id": 999999},
        {"title": "Bad status", "category_id": None, "status": "gone"},
        {"title": "x" * 201, "category_id": None},
        {"title": "Unknown field", "category_id": None, "colour": "red"},
    ],
)
def test_create_bad_input(token_client, body):
    cat = make_category()
    body = {k: (cat.id if k == "category_id" and v is None else v) for k, v in body.items()}
    response = token_client.post("/api/articles/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_duplicate_slug_is_400(token_client):
    cat = make_category()
    make_article(category=cat, title="Same")
    Article.objects.filter(title="Same").update(slug="same")
    response = token_client.post("/api/articles/", {"title": "Other", "slug": "same", "category_id": cat.id}, format="json")
    assert response.status_code == 400


def test_user_without_author_profile_must_name_one():
    staff = make_user(staff=True)
    grant(staff, "add_article")
    client = APIClient()
    client.force_authenticate(staff)
    cat, author = make_category(), make_author()
    assert client.post("/api/articles/", {"title": "T", "category_id": cat.id}, format="json").status_code == 400
    response = client.post("/api/articles/", {"title": "T", "category_id": cat.id, "author_id": author.id}, format="json")
    assert response.status_code == 201


@pytest.mark.django_db(transaction=True)
def test_if_match_with_a_stale_etag_is_a_412_and_changes_nothing(token_client):
    """Issue 28.4: an edit based on what the editor read; another edit in between refuses it."""
    article = make_article(title="Original")
    detail = APIClient().get(f"/api/articles/{article.pk}/")
    etag = detail["ETag"]
    first = token_client.patch(f"/api/articles/{article.pk}/", {"title": "First edit"}, format="json",
                               HTTP_IF_MATCH=etag)
    assert first.status_code == 200 and first.json()["etag"] != etag
    stale = token_client.patch(f"/api/articles/{article.pk}/", {"title": "Based on the original"}, format="json",
                               HTTP_IF_MATCH=etag)
    assert stale.status_code == 412 and stale.json()["error"] == "precondition_failed", stale.content
    assert Article.objects.get(pk=article.pk).title == "First edit"
    assert token_client.delete(f"/api/articles/{article.pk}/", HTTP_IF_MATCH=etag).status_code == 412
    detail = APIClient().get(f"/api/articles/{article.pk}/")
    fresh = detail["ETag"]
    assert first.json()["etag"] == f'"v{detail.json()["version"]}"', "the editorial answer names the version"
    ok = token_client.patch(f"/api/articles/{article.pk}/", {"title": "Second edit"}, format="json", HTTP_IF_MATCH=fresh)
    assert ok.status_code == 200
    assert token_client.patch(f"/api/articles/{article.pk}/", {"excerpt": "any"}, format="json",
                              HTTP_IF_MATCH="*").status_code == 200
    assert token_client.delete(f"/api/articles/{article.pk}/", HTTP_IF_MATCH=ok.json()["etag"]).status_code == 412
    assert token_client.delete(f"/api/articles/{article.pk}/", HTTP_IF_MATCH="*").status_code == 204


def test_an_edit_never_writes_back_a_stale_view_count(token_client):
    """The counters' flush increments view_count in place; an edit based on an older read of the
    row must not put the old count back (issue 28.4)."""
    from articles import services

    article = make_article()
    loaded = Article.objects.get(pk=article.pk)  # what an editor's request loaded
    Article.objects.filter(pk=article.pk).update(view_count=41)  # a flush meanwhile
    services.article_update(article=loaded, data={"title": "Edited after the flush"})
    assert Article.objects.get(pk=article.pk).view_count == 41


def test_a_publish_or_a_counter_flush_never_writes_back_a_stale_edit():
    """Issue 28.4: the admin's bulk publish and the views' flush used to write every column of
    the instance they had loaded; now a publish applies its own fields to the locked row and
    the flush increments view_count in place: neither undoes an edit made meanwhile."""
    from articles import counters, services

    article = make_article(title="Loaded", published=False)
    stale = Article.objects.get(pk=article.pk)  # what the admin action's queryset loaded
    services.article_update(article=Article.objects.get(pk=article.pk), data={"title": "Edited meanwhile"})
    services.article_publish(article=stale)
    saved = Article.objects.get(pk=article.pk)
    assert (saved.title, saved.status) == ("Edited meanwhile", Article.Status.PUBLISHED)
    services.article_register_view(article_id=article.pk, client="198.51.100.7")
    services.article_update(article=Article.objects.get(pk=article.pk), data={"excerpt": "Edited before the flush"})
    counters.flush_view_counts()
    flushed = Article.objects.get(pk=article.pk)
    assert (flushed.excerpt, flushed.version, flushed.view_count) == ("Edited before the flush", saved.version + 1,
                                                                       saved.view_count + 1)


class Likers:
    """`readers` readers toggling their like of an article through the API (POST, DELETE, ...),
    each in its own thread on its own connection, until stop()."""

    def __init__(self, article, readers: int):
        self.path = f"/api/articles/{article.pk}/like/"
        self.done = threading.Event()
        self.toggles = [0] * readers
        self.errors: list[int] = []
        self.threads = [threading.Thread(target=self._loop, args=(n, make_user())) for n in range(readers)]
        for thread in self.threads:
            thread.start()

    def _loop(self, n, user):
        client = APIClient()
        client.force_authenticate(user)
        try:
            while not self.done.is_set():
                response = client.post(self.path) if self.toggles[n] % 2 == 0 else client.delete(self.path)
                if response.status_code not in (200, 201, 204):
                    self.errors.append(response.status_code)
                self.toggles[n] += 1
        finally:
            connection.close()

    def wait_for(self, more: int) -> None:
        """Return once they made `more` toggles from now (each changed the detail's counts)."""
        target, deadline = sum(self.toggles) + more, time.monotonic() + 60
        while sum(self.toggles) < target:
            assert time.monotonic() < deadline and not self.errors, ("the readers stopped liking", self.errors)
            time.sleep(0.01)

    def stop(self) -> int:
        self.done.set()
        for thread in self.threads:
            thread.join(30)
        assert not self.errors, self.errors
        return sum(self.toggles)


@pytest.mark.django_db(transaction=True)
def test_readers_liking_between_an_editors_read_and_edit_cause_no_412(token_client):
    """Issue 28.4: the precondition is the article's editorial state. Readers like and unlike the
    article (changing the public detail's counts and ETag) between the editor's read and the
    PATCH, and during it: an If-Match with the version read before the likes (the editorial
    answer's "etag", or "v<version>" from the public detail) is still a 200; an editor's save
    in between is still a 412."""
    article = make_article(title="Before the likes")
    read = token_client.patch(f"/api/articles/{article.pk}/", {"excerpt": "read"}, format="json", HTTP_IF_MATCH="*")
    held = read.json()["etag"]  # what the editor holds from the answer before the likes
    detail = APIClient().get(f"/api/articles/{article.pk}/")
    assert f'"v{detail.json()["version"]}"' == held
    likers = Likers(article, readers=4)
    try:
        likers.wait_for(8)
        # An even number of toggles per reader brings the counts (and the ETag) back: the likes
        # change the detail at some moment, not at every one.
        assert wait_until(lambda: APIClient().get(f"/api/articles/{article.pk}/")["ETag"] != detail["ETag"], 10), \
            "the likes never changed the detail"
        edited = token_client.patch(f"/api/articles/{article.pk}/", {"title": "Edited while readers like"},
                                    format="json", HTTP_IF_MATCH=held)
        assert edited.status_code == 200, edited.content
        likers.wait_for(8)
        again = token_client.patch(f"/api/articles/{article.pk}/", {"title": "Edited again"}, format="json",
                                   HTTP_IF_MATCH=edited.json()["etag"])
        assert again.status_code == 200, again.content
        stale = token_client.patch(f"/api/articles/{article.pk}/", {"title": "Based on the first read"},
                                   format="json", HTTP_IF_MATCH=held)
        assert stale.status_code == 412 and stale.json()["error"] == "precondition_failed", stale.content
    finally:
        toggles = likers.stop()
    assert toggles >= 16
    assert Article.objects.get(pk=article.pk).title == "Edited again"


@pytest.mark.django_db(transaction=True)
def test_two_editors_with_the_same_read_one_gets_a_412_while_readers_like(editor):
    """Two editors PATCH at once with the same If-Match (readers liking meanwhile): exactly one
    edit applies, the other is a 412, and the article shows the one that applied."""
    article = make_article(title="Shared read")
    held = f'"v{Article.objects.get(pk=article.pk).version}"'
    tokens = [Token.objects.create(user=editor).key]
    other = make_user(username="editor-two", staff=True)
    grant(other, "change_article")
    tokens.append(Token.objects.create(user=other).key)
    likers = Likers(article, readers=3)
    barrier = threading.Barrier(2)
    answers: dict[str, int] = {}

    def edit(token: str, title: str):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            barrier.wait(10)
            answers[title] = client.patch(f"/api/articles/{article.pk}/", {"title": title}, format="json",
                                          HTTP_IF_MATCH=held).status_code
        finally:
            connection.close()

    try:
        likers.wait_for(4)
        editors = [threading.Thread(target=edit, args=(token, title))
                   for token, title in zip(tokens, ("Editor one's title", "Editor two's title"), strict=True)]
        for thread in editors:
            thread.start()
        for thread in editors:
            thread.join(30)
    finally:
        likers.stop()
    assert sorted(answers.values()) == [200, 412], answers
    [winner] = [title for title, code in answers.items() if code == 200]
    saved = Article.objects.get(pk=article.pk)
    assert saved.title == winner and f'"v{saved.version}"' != held
