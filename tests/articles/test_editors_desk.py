"""The editor's desk (issue 33): previews that never leak, revisions with revert, corrections,
and the admin's links to it all."""

from __future__ import annotations

import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from articles import services
from articles import tags as T
from articles.models import Article
from caching import engine
from tests.articles.conftest import grant
from tests.articles.reader_process import start_reader, stop_reader
from tests.factories import make_article, make_user

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def api(token_client):
    """The editor's API client (tests/articles/conftest.py)."""
    return token_client


@pytest.fixture
def admin_desk(editor):
    client = Client()
    client.force_login(editor)
    return client


def _scheduled(**kwargs) -> Article:
    return make_article(title="Embargoed until tomorrow", ago=-timedelta(days=1), **kwargs)


def _l2_keys(fragment: str) -> list[str]:
    client = engine.redis_client()
    return [k.decode() for k in client.scan_iter(match=f"*{fragment}*", count=1000)]


def _l1_keys(fragment: str) -> list[str]:
    return [k for k in engine.default().l1.keys() if fragment in str(k)]


# --- previews ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_share_link_shows_a_scheduled_story_to_anyone_and_no_tier_keeps_it(api):
    article = _scheduled()
    link = api.post(f"/api/articles/{article.id}/preview-link/")
    assert link.status_code == 201, link.content
    urls = link.json()
    assert urls["url"].startswith("/preview/") and urls["api_url"].startswith("/api/preview/")
    stranger = Client()  # no account
    for _ in range(2):
        page = stranger.get(urls["url"])
        assert page.status_code == 200
        assert b"Embargoed until tomorrow" in page.content and b'name="robots" content="noindex' in page.content
        assert page["Cache-Control"] == "private, no-store" and page["X-Robots-Tag"].startswith("noindex")
        assert "Surrogate-Key" not in page and "ETag" not in page and "X-Cache" not in page
        data = stranger.get(urls["api_url"])
        assert data.status_code == 200 and data.json()["title"] == "Embargoed until tomorrow"
        assert data["Cache-Control"] == "private, no-store"
    token = urls["url"].split("/")[2]
    assert not _l2_keys("preview") and not _l2_keys(token[:20])
    assert not _l1_keys("preview")
    stranger.get(f"/api/articles/{make_article().id}/")  # the check sees L1 keys: a public one is there
    assert _l1_keys("article")
    # The public URLs of the scheduled story stay 404 meanwhile.
    assert stranger.get(f"/articles/{article.slug}/").status_code == 404
    assert stranger.get(f"/api/articles/{article.id}/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_share_link_ends_at_publication_and_at_expiry(api, settings):
    article = _scheduled()
    url = api.post(f"/api/articles/{article.id}/preview-link/").json()["url"]
    assert Client().get(url).status_code == 200
    services.article_publish_now(article=article)
    ended = Client().get(url)
    assert ended.status_code == 404 and ended["Cache-Control"] == "private, no-store"
    assert Client().get(f"/articles/{article.slug}/").status_code == 200

    draft = make_article(title="A draft", published=False)
    settings.PREVIEW_LINK_SECONDS = 1
    url = api.post(f"/api/articles/{draft.id}/preview-link/").json()["api_url"]
    assert Client().get(url).status_code == 200
    time.sleep(2.1)
    expired = Client().get(url)
    assert expired.status_code == 404 and expired.json()["error"] == "not_found"
    assert Client().get("/preview/not-a-token/").status_code == 404
    tampered = url.replace("/api/preview/", "/api/preview/x")
    assert Client().get(tampered).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_preview_is_what_the_public_will_get(api):
    """The share link's JSON is the public detail the story has once live (same fields, same
    values but its counters' moment), and its page is the public page's with the banner and the
    robots tag: same headline, byline, picture markup and JSON-LD. A draft's byline shows no
    publication time (none yet)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from articles import demo_data

    article = services.article_update(article=_scheduled(), data={"hero_image": SimpleUploadedFile(
        "embargo.jpg", demo_data.hero_picture_jpeg(1), content_type="image/jpeg")})
    urls = api.post(f"/api/articles/{article.id}/preview-link/").json()
    before = Client().get(urls["api_url"]).json()
    page_before = Client().get(urls["url"]).content.decode()
    services.article_publish_now(article=article)
    after = Client().get(f"/api/articles/{article.id}/").json()
    assert set(before) == set(after)
    moving = {"published_at", "updated_at", "version"}  # publishing now moves them
    assert {k: v for k, v in before.items() if k not in moving} == {k: v for k, v in after.items() if k not in moving}
    page_after = Client().get(f"/articles/{article.slug}/").content.decode()

    def shown(html: str) -> list[str]:
        return [re.search(pattern, html, re.S).group(0) for pattern in (r"<h1>.*?</h1>", r"<figure.*?</figure>",
                                                                         r'<p class="lede">.*?</p>')]

    assert shown(page_before) == shown(page_after) and "<picture>" in page_after
    assert 'class="preview-banner"' in page_before and 'class="preview-banner"' not in page_after
    draft = make_article(title="Not dated yet", published=False)
    page = Client().get(api.post(f"/api/articles/{draft.id}/preview-link/").json()["url"]).content.decode()
    byline = re.search(r'<p class="meta">By .*?</p>', page).group(0)
    assert "<time" not in byline and not byline.endswith(" · </p>"), byline


@pytest.mark.django_db
@pytest.mark.parametrize(("staff", "superuser", "linked"), [(True, True, True), (True, False, True), (False, False, False)],
                         ids=["superuser", "staff-without-permissions", "not-staff"])
def test_the_cache_page_is_linked_for_exactly_who_may_open_it(staff, superuser, linked):
    """The Cache page is an admin view (staff; purging needs articles.purge_cache on top): the
    index and the side navigation link it for those users and nobody else."""
    user = make_user(username="someone", staff=staff)
    user.is_superuser = superuser
    user.save()
    client = Client()
    client.force_login(user)
    page = client.get("/admin/cache/")
    assert (page.status_code == 200) is linked
    index = client.get("/admin/")
    assert (index.status_code == 200 and b'href="/admin/cache/"' in index.content) is linked
    if linked:
        may_purge = b'value="Purge from every tier"' in page.content
        assert may_purge is superuser  # the purge form only with articles.purge_cache


@pytest.mark.django_db(transaction=True)
def test_preview_links_need_the_change_permission():
    article = _scheduled()
    reader = make_user(username="just-a-reader")
    client = APIClient()
    client.force_authenticate(reader)
    assert client.post(f"/api/articles/{article.id}/preview-link/").status_code == 403
    assert APIClient().post(f"/api/articles/{article.id}/preview-link/").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
def test_the_admin_previews_unsaved_changes_without_saving_them(admin_desk):
    article = _scheduled()
    form = admin_desk.get(f"/admin/articles/article/{article.id}/change/")
    assert form.status_code == 200
    assert b"Preview changes" in form.content and b"Share preview" in form.content
    assert b"View on site" in form.content
    fields = {
        "title": "A headline not saved yet", "slug": article.slug, "excerpt": article.excerpt, "body": article.body,
        "author": article.author_id, "category": article.category_id, "status": article.status,
        "published_at_0": timezone.localtime(article.published_at).strftime("%Y-%m-%d"),
        "published_at_1": timezone.localtime(article.published_at).strftime("%H:%M:%S"),
        "expires_at_0": "", "expires_at_1": "", "hero_image_url": "", "loaded_version": article.version,
    }
    shown = admin_desk.post(f"/admin/articles/article/{article.id}/preview/", fields)
    assert shown.status_code == 200, shown.content[:500]
    assert "no-store" in shown["Cache-Control"] and "private" in shown["Cache-Control"]
    assert b"A headline not saved yet" in shown.content, shown.content.decode()[:3000]
    article.refresh_from_db()
    assert article.title == "Embargoed until tomorrow"
    share = admin_desk.get(f"/admin/articles/article/{article.id}/share-preview/")
    assert share.status_code == 302 and share["Location"].startswith("/preview/")


# --- revisions -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_save_is_a_revision_with_who_and_what_changed(api, admin_desk, editor):
    created = api.post("/api/articles/", {"title": "First title", "category_id": make_article().category_id,
                                          "status": "published", "body": "Body."}, format="json")
    assert created.status_code == 201, created.content
    article_id = created.json()["id"]
    assert api.patch(f"/api/articles/{article_id}/", {"title": "Second title"}, format="json").status_code == 200
    revisions = api.get(f"/api/articles/{article_id}/revisions/").json()["results"]
    assert [r["type"] for r in revisions] == ["changed", "created"]
    assert revisions[0]["user"] == editor.username and revisions[0]["changed_fields"] == ["title"]
    assert revisions[0]["version"] == revisions[1]["version"] + 1
    history = admin_desk.get(f"/admin/articles/article/{article_id}/history/")
    assert history.status_code == 200
    assert b"First title" in history.content and b"Second title" in history.content  # the field diff
    assert b"Revert to this revision" in history.content


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_revert_is_an_edit_every_process_sees_once_it_returns(api, admin_desk):
    """Two reader processes (their own L1) and two reader threads race a revert through the admin:
    no read that started after the revert returned shows the title it replaced."""
    article = make_article(title="Original headline")
    first = article.history.order_by("history_id").first().history_id
    services.article_update(article=article, data={"title": "Wrong headline"})
    path = f"/api/articles/{article.id}/"
    readers = [start_reader(), start_reader()]
    results: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def race(get):
        try:
            while not stop.is_set():
                started = time.monotonic()
                reply = get(path)
                title = json.loads(reply["body"])["title"] if reply["status"] == 200 else f"status {reply['status']}"
                with lock:
                    results.append((started, title))
        finally:
            connections.close_all()

    def local_get(p):
        response = Client().get(p)
        return {"status": response.status_code, "body": response.content.decode()}

    getters = [get for _, get in readers] + [local_get, local_get]
    try:
        for get in getters[:2]:
            assert json.loads(get(path)["body"])["title"] == "Wrong headline"  # in their L1
        threads = [threading.Thread(target=race, args=(get,)) for get in getters]
        for t in threads:
            t.start()
        time.sleep(0.5)
        confirm = admin_desk.get(f"/admin/articles/article/{article.id}/revert/{first}/")
        assert confirm.status_code == 200 and b"Original headline" in confirm.content
        shown = re.search(rb'name="version" value="(\d+)"', confirm.content).group(1).decode()
        reverted = admin_desk.post(f"/admin/articles/article/{article.id}/revert/{first}/", {"version": shown})
        returned = time.monotonic()
        assert reverted.status_code == 302
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        for proc, _ in readers:
            stop_reader(proc)
    after = [title for started, title in results if started > returned]
    assert after, "no read started after the revert"
    assert set(after) == {"Original headline"}, [t for t in after if t != "Original headline"][:5]
    article.refresh_from_db()
    latest = article.history.order_by("-history_id").first()
    assert article.title == "Original headline" and latest.history_change_reason.startswith(f"Reverted to revision {first}")
    assert latest.version == article.version and article.version == 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_revert_is_fresh_at_the_edge_for_readers_racing_it(edge, admin_desk):
    """Readers race a revert through varnishd (the page, the JSON detail, the home feed): the
    edge held the replaced title, and no read through it that started after the revert returned
    shows it; the revert's purge was delivered to the edge (its outbox row is sent)."""
    from cdn.models import PurgeOutbox

    article = make_article(title="Original headline")
    first = article.history.order_by("history_id").first().history_id
    services.article_update(article=article, data={"title": "Wrong headline"})
    paths = [f"/articles/{article.slug}/", f"/api/articles/{article.id}/", "/api/articles/"]
    for path in paths:
        assert "Wrong headline" in edge.get(path).text
        assert edge.get(path).headers["X-Cache-Edge"] == "HIT", path  # the edge holds the old title
    results: list[tuple[float, str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def race(path):
        while not stop.is_set():
            started = time.monotonic()
            response = edge.get(path)
            seen = "old" if "Wrong headline" in response.text else "new" if "Original headline" in response.text else \
                f"status {response.status_code}"
            with lock:
                results.append((started, path, seen))

    threads = [threading.Thread(target=race, args=(path,)) for path in paths for _ in range(2)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        confirm = admin_desk.get(f"/admin/articles/article/{article.id}/revert/{first}/")
        shown = re.search(rb'name="version" value="(\d+)"', confirm.content).group(1).decode()
        started_at = timezone.now()
        assert admin_desk.post(f"/admin/articles/article/{article.id}/revert/{first}/", {"version": shown}).status_code == 302
        returned = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    after = [(path, seen) for started, path, seen in results if started > returned]
    assert {path for path, _ in after} == set(paths), "every path read after the revert returned"
    assert {seen for _, seen in after} == {"new"}, [r for r in after if r[1] != "new"][:5]
    assert any(seen == "old" for started, _, seen in results if started < returned), "readers saw the old title first"
    purges = list(PurgeOutbox.objects.filter(created_at__gte=started_at, tags__contains=[T.article_tag(article.id)]))
    assert purges and {p.status for p in purges} == {PurgeOutbox.Status.DONE}


# --- corrections ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_correction_shows_on_the_page_in_json_ld_and_json_and_the_feed_shows_the_item_updated(api):
    article = make_article(title="Council votes on the budget", ago=timedelta(days=2))
    page_before = Client().get(f"/articles/{article.slug}/")  # cached in the tiers
    assert page_before.status_code == 200 and b"Correction" not in page_before.content
    Client().get("/feed/atom/")
    note = "An earlier version said the vote was on Tuesday; it was on Wednesday."
    response = api.post(f"/api/articles/{article.id}/corrections/", {"note": note}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["corrections"][0]["note"] == note
    page = Client().get(f"/articles/{article.slug}/")
    assert page.status_code == 200 and note.encode() in page.content
    ld = json.loads(re.search(rb'<script type="application/ld\+json">(.*?)</script>', page.content, re.S).group(1))
    assert ld["correction"][0]["text"] == note and ld["correction"][0]["@type"] == "CorrectionComment"
    article.refresh_from_db()
    assert ld["dateModified"] == article.updated_at.isoformat().replace("+00:00", "Z") or \
        ld["dateModified"].startswith(article.updated_at.strftime("%Y-%m-%dT%H:%M"))
    detail = Client().get(f"/api/articles/{article.id}/").json()
    assert detail["corrections"][0]["note"] == note
    feed = ET.fromstring(Client().get("/feed/atom/").content)
    entry = next(e for e in feed.findall(f"{ATOM}entry") if e.findtext(f"{ATOM}title") == article.title)
    assert entry.findtext(f"{ATOM}updated")[:16] == article.updated_at.strftime("%Y-%m-%dT%H:%M")
    assert api.post(f"/api/articles/{article.id}/corrections/", {"note": "bad\x0bnote"}, format="json").status_code == 400
    assert api.post(f"/api/articles/{article.id}/corrections/", {"note": "  "}, format="json").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_the_admin_publishes_a_correction(admin_desk):
    article = make_article(title="A story to correct")
    form = admin_desk.get(f"/admin/articles/article/{article.id}/correction/")
    assert form.status_code == 200
    done = admin_desk.post(f"/admin/articles/article/{article.id}/correction/", {"note": "The mayor's name is Ana."})
    assert done.status_code == 302
    article.refresh_from_db()
    assert [c["note"] for c in article.corrections] == ["The mayor's name is Ana."]
    assert article.history.order_by("-history_id").first().history_change_reason.startswith("Correction:")


# --- admin polish --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_index_links_the_cache_page(admin_desk):
    index = admin_desk.get("/admin/")
    assert index.status_code == 200 and b'href="/admin/cache/"' in index.content


def test_the_hit_ratio_chart_leaves_room_for_its_labels():
    from newsite.ops.admin_views import LABEL_W, PLOT_W, hit_ratio_svg

    summary = {"tiers": {"l1": {"hit": 1_234_567, "miss": 1, "hit_ratio": 0.999}, "l2": {}}, "prefixes": {}}
    svg = str(hit_ratio_svg(summary, title="t"))
    width = int(re.search(r'width="(\d+)"', svg).group(1))
    label = "99.9% of 1234568"
    assert label in svg
    # 11 px sans-serif: at most ~7 px a character; the label starts 6 px right of the plot.
    assert LABEL_W + PLOT_W + 6 + 7 * len(label) <= width


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_edge_never_keeps_a_preview(live_server):
    """Through varnishd with the shipped VCL: every request of a share link reaches the app (never
    an edge HIT), with its private, no-store headers."""
    from articles import preview
    from tests.cdn.servers import Varnish

    article = _scheduled()
    links = preview.links(article)
    varnish = Varnish(int(live_server.url.rsplit(":", 1)[1])).start()
    try:
        for path in (links["url"], links["api_url"]):
            for _ in range(3):
                response = varnish.get(path)
                assert response.status_code == 200
                assert response.headers.get("X-Cache-Edge") != "HIT", path
                assert response.headers["Cache-Control"].startswith("private, no-store")
        assert varnish.get(f"/articles/{article.slug}/").status_code == 404
    finally:
        varnish.close()


# --- from the review of the desk ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_simple_historys_form_never_saves_a_revision_back(admin_desk):
    """Its POST would save the old object outside article_revert (for a view-only user too)."""
    article = make_article(title="Kept")
    revision = article.history.first().history_id
    viewer = make_user(username="viewer-only", staff=True)
    grant(viewer, "view_article")
    for user in (viewer, None):
        client = Client()
        if user is not None:
            client.force_login(user)
        else:
            client = admin_desk
        page = f"/admin/articles/article/{article.id}/history/{revision}/"
        assert client.get(page).status_code == 200
        response = client.post(page, {"title": "Defaced", "slug": article.slug, "author": article.author_id,
                                      "category": article.category_id, "status": "published"})
        assert response.status_code == 403
    article.refresh_from_db()
    assert article.title == "Kept"


@pytest.mark.django_db(transaction=True)
def test_a_share_link_never_comes_back(api, editor):
    """Made while scheduled: it ends at publication and stays ended after a take-down or an
    unpublish; a revoke ends the links of a draft."""
    article = _scheduled()
    url = api.post(f"/api/articles/{article.id}/preview-link/").json()["api_url"]
    services.article_publish_now(article=article)
    assert Client().get(url).status_code == 404
    services.article_update(article=article, data={"expires_at": timezone.now() + timedelta(milliseconds=50)})
    time.sleep(0.1)  # taken down
    assert Client().get(url).status_code == 404
    services.article_unpublish(article=article)
    assert Client().get(url).status_code == 404
    fresh = api.post(f"/api/articles/{article.id}/preview-link/").json()["api_url"]
    assert Client().get(fresh).status_code == 200  # a draft again: a new link works
    services.article_revoke_previews(article=article)
    assert Client().get(fresh).status_code == 404
    live = make_article()
    public = api.post(f"/api/articles/{live.id}/preview-link/").json()
    assert public == {"url": f"/articles/{live.slug}/", "api_url": f"/api/articles/{live.id}/", "expires_at": None}


@pytest.mark.django_db(transaction=True)
def test_reverts_are_conditional_like_any_edit(api, admin_desk):
    article = make_article(title="v1")
    first = article.history.first().history_id
    services.article_update(article=article, data={"title": "v2"})
    stale = '"' + "0" * 32 + '"'
    refused = api.post(f"/api/articles/{article.id}/revert/", {"revision_id": first}, format="json", HTTP_IF_MATCH=stale)
    assert refused.status_code == 412
    confirm = admin_desk.get(f"/admin/articles/article/{article.id}/revert/{first}/")
    shown_version = re.search(rb'name="version" value="(\d+)"', confirm.content).group(1).decode()
    services.article_update(article=article, data={"body": "A colleague's change"})  # after the page was shown
    admin_desk.post(f"/admin/articles/article/{article.id}/revert/{first}/", {"version": shown_version})
    article.refresh_from_db()
    assert (article.title, article.body) == ("v2", "A colleague's change")  # not reverted over it
    assert api.post(f"/api/articles/{article.id}/revert/", {"revision_id": 10**9}, format="json").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_corrections_are_for_live_articles(api):
    draft = make_article(published=False)
    refused = api.post(f"/api/articles/{draft.id}/corrections/", {"note": "Too early"}, format="json")
    assert refused.status_code == 400 and draft.history.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_article_written_without_a_revision_keeps_its_first_state(api, editor):
    """seed_demo's COPY, bulk inserts and the rows from before revisions were kept have none: the
    first edit records the state it replaces, and a deletion records who."""
    article = make_article(title="Original wording")
    article.history.all().delete()
    services.article_update(article=article, data={"title": "New wording"}, by=editor)
    titles = list(article.history.order_by("history_id").values_list("title", flat=True))
    assert titles == ["Original wording", "New wording"]
    assert api.delete(f"/api/articles/{article.id}/").status_code == 204
    deleted = Article.history.filter(id=article.id, history_type="-").get()
    assert deleted.history_user == editor


@pytest.mark.django_db(transaction=True)
def test_an_insert_that_does_not_name_the_new_columns_still_works():
    """The previous release's workers during a rolling deploy (or a raw COPY) insert rows without
    `corrections` and `preview_epoch`: database defaults fill them."""
    template = make_article()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO articles_article (title, slug, excerpt, body, author_id, category_id, status, created_at,"
            " updated_at, is_breaking, hero_image_url, view_count, version)"
            " VALUES ('Old worker', 'old-worker', '', '', %s, %s, 'draft', now(), now(), false, '', 0, 1)",
            [template.author_id, template.category_id],
        )
    row = Article.objects.get(slug="old-worker")
    assert row.corrections == [] and row.preview_epoch == 0


@pytest.mark.django_db(transaction=True)
def test_preview_views_spend_the_clients_budget(api, settings):
    settings.THROTTLE = {"public_miss": "2/60", "views": "off"}
    settings.THROTTLE_EXEMPT = []
    article = _scheduled()
    urls = api.post(f"/api/articles/{article.id}/preview-link/").json()
    reader = Client(REMOTE_ADDR="198.51.100.99")
    answers = [reader.get(urls["api_url"]) for _ in range(3)] + [reader.get(urls["url"])]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    for answer in answers:  # a refusal is a preview answer too: personal, never kept, not indexed
        assert answer["Cache-Control"] == "private, no-store", (answer.status_code, answer["Cache-Control"])
        assert answer["X-Robots-Tag"].startswith("noindex")
        assert "Surrogate-Key" not in answer and "ETag" not in answer
    assert answers[2]["Retry-After"] and answers[3]["Retry-After"]
    assert answers[2].json()["error"] == "throttled" and answers[3].json()["error"] == "throttled"


# --- the API's preview of an unsaved change --------------------------------------------------------


def _without_moments(html: str) -> str:
    """A page without what a save moves (updated_at) and what only a preview carries (the banner,
    the robots tag)."""
    html = html.replace('<meta name="robots" content="noindex, nofollow">', "")
    html = re.sub(r'<p class="preview-banner".*?</p>', "", html, flags=re.S)
    html = re.sub(r"<time[^>]*>.*?</time>", "<time>", html, flags=re.S)
    html = re.sub(r'(article:modified_time" content=")[^"]*"', r'\1"', html)
    return re.sub(r'("dateModified": )"[^"]*"', r'\1""', html)


def _tiers_snapshot() -> tuple[dict, set]:
    """Every L2 key of the run's prefix with its value (strings; the type of the others), and the
    L1 keys of this process."""
    from django.conf import settings

    client = engine.redis_client()
    l2 = {}
    for key in client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000):
        kind = client.type(key)
        l2[key] = client.get(key) if kind == b"string" else kind
    return l2, set(engine.default().l1.keys())


@pytest.mark.django_db(transaction=True)
def test_the_api_previews_a_change_as_the_public_detail_and_page_show_it_once_patched(api):
    """POST /api/articles/{id}/preview/ (and .../preview/page/) with a PATCH body: the JSON and the
    page are what the public detail and page show after a real PATCH with that change (but the
    update time), for a live article; and nothing is stored: no version, no revision, no outbox
    row, no L1 or L2 entry, no invalidation (the cached public detail still answers from a tier)."""
    from cdn.models import PurgeOutbox

    article = make_article(title="As published", ago=timedelta(days=2))
    reader = Client()
    services.comment_create(article=article, user=make_user(username="commenter"), body="First!")
    assert reader.get(f"/api/articles/{article.id}/").json()["title"] == "As published"
    assert reader.get(f"/articles/{article.slug}/").status_code == 200
    change = {"title": "A better headline", "excerpt": "A sharper lede", "body": "New body.\n\nTwo paragraphs.",
              "is_breaking": True}
    version, revisions, outbox = article.version, article.history.count(), PurgeOutbox.objects.count()
    before = _tiers_snapshot()
    assert before[0] and before[1], "the public detail and page are in L2 and L1"

    previewed = api.post(f"/api/articles/{article.id}/preview/", change, format="json")
    page = api.post(f"/api/articles/{article.id}/preview/page/", change, format="json")
    for answer in (previewed, page):
        assert answer.status_code == 200, answer.content[:500]
        assert answer["Cache-Control"] == "private, no-store" and answer["X-Robots-Tag"].startswith("noindex")
        assert not {"Surrogate-Key", "Cache-Tag", "ETag", "Last-Modified", "X-Cache"} & set(answer.headers)
    assert page["Content-Type"].startswith("text/html") and 'class="preview-banner"' in page.content.decode()
    data = previewed.json()
    assert data["title"] == "A better headline" and data["comment_count"] == 1 and data["version"] == version + 1

    article.refresh_from_db()
    assert (article.version, article.title, article.history.count()) == (version, "As published", revisions)
    assert PurgeOutbox.objects.count() == outbox
    assert _tiers_snapshot() == before, "a preview stored or invalidated something in L1 or L2"
    cached = reader.get(f"/api/articles/{article.id}/")
    assert cached.json()["title"] == "As published" and cached["X-Cache"].startswith("HIT"), cached["X-Cache"]

    etag = api.get(f"/api/articles/{article.id}/")["ETag"]
    assert api.patch(f"/api/articles/{article.id}/", change, format="json", HTTP_IF_MATCH=etag).status_code == 200
    public = reader.get(f"/api/articles/{article.id}/").json()
    assert public["title"] == "A better headline"
    assert {k: v for k, v in data.items() if k != "updated_at"} == {k: v for k, v in public.items() if k != "updated_at"}
    public_page = reader.get(f"/articles/{article.slug}/").content.decode()
    assert _without_moments(page.content.decode()) == _without_moments(public_page)


@pytest.mark.django_db(transaction=True)
def test_the_api_preview_of_a_change_refuses_what_patch_refuses_with_the_same_400(api):
    """Same fields and validation as PATCH: each bad body is the same 400 from both, and the
    preview's is personal too; a draft or scheduled article previews like a live one."""
    article = _scheduled()
    taken = make_article()
    bad_bodies = [
        {"colour": "red"},                                   # unknown field
        {"title": 7},                                        # wrong JSON type
        {"title": ""},                                       # blank
        {"category_id": 999999},                             # no such category
        {"slug": taken.slug},                                # another article's slug
        {"status": "gone"},                                  # not a status
        {"published_at": "2030-01-02T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"},  # taken down first
        {"hero_image_url": "not a url"},
    ]
    for body in bad_bodies:
        previewed = api.post(f"/api/articles/{article.id}/preview/", body, format="json")
        patched = api.patch(f"/api/articles/{article.id}/", body, format="json")
        assert previewed.status_code == patched.status_code == 400, (body, previewed.content, patched.content)
        assert previewed.json() == patched.json(), body
        assert previewed["Cache-Control"] == "private, no-store"
    assert api.post(f"/api/articles/{article.id}/preview/page/", {"title": 7}, format="json").status_code == 400
    assert api.post("/api/articles/999999/preview/", {"title": "x"}, format="json").status_code == 404
    not_json = api.post(f"/api/articles/{article.id}/preview/", "title=x", content_type="application/x-www-form-urlencoded")
    assert not_json.status_code == 415
    shown = api.post(f"/api/articles/{article.id}/preview/", {"status": "published", "published_at": None}, format="json")
    assert shown.status_code == 200 and shown.json()["published_at"], "published without a time: now, as a save"
    article.refresh_from_db()
    assert article.visibility() == "scheduled" and article.title == "Embargoed until tomorrow"


@pytest.mark.django_db(transaction=True)
def test_the_api_preview_of_a_change_needs_the_change_permission():
    article = make_article()
    for path in (f"/api/articles/{article.id}/preview/", f"/api/articles/{article.id}/preview/page/"):
        anonymous = APIClient().post(path, {"title": "x"}, format="json")
        assert anonymous.status_code in (401, 403) and anonymous["Cache-Control"] == "private, no-store"
        reader = APIClient()
        reader.force_authenticate(make_user(username=f"reader-{path.count('/')}"))
        assert reader.post(path, {"title": "x"}, format="json").status_code == 403
        assert APIClient().get(path).status_code == 405


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_edge_never_keeps_a_previewed_change(edge, editor):
    """Through varnishd (the shipped VCL): each POST of a change reaches the app (two different
    changes get their own answers, never an edge HIT), and the edge's copy of the public detail
    and page stays the saved article's."""
    import requests
    from rest_framework.authtoken.models import Token

    article = make_article(title="Saved title")
    token = Token.objects.get_or_create(user=editor)[0].key
    paths = [f"/api/articles/{article.id}/", f"/articles/{article.slug}/"]
    for path in paths:
        edge.get(path)
        assert edge.get(path).headers["X-Cache-Edge"] == "HIT"
    for suffix in ("preview/", "preview/page/"):
        for title in ("First idea", "Second idea", "First idea"):
            response = requests.post(f"{edge.url}/api/articles/{article.id}/{suffix}", json={"title": title},
                                     headers={"Authorization": f"Token {token}"}, timeout=10)
            assert response.status_code == 200, response.text[:300]
            assert title in response.text and response.headers.get("X-Cache-Edge") != "HIT"
            assert response.headers["Cache-Control"] == "private, no-store"
        assert edge.get(f"/api/articles/{article.id}/{suffix}").status_code == 405
    for path in paths:
        shown = edge.get(path)
        assert "Saved title" in shown.text and "idea" not in shown.text and shown.headers["X-Cache-Edge"] == "HIT"


@pytest.mark.django_db(transaction=True)
def test_a_blank_slug_is_made_from_the_title_by_patch_and_its_preview():
    """A PATCH with "slug": "" saved an article with no URL (its page's links failed to build: the
    preview page answered a 500); now a blank slug is made from the title, as on creation, and the
    preview shows the slug the PATCH then saves."""
    editor = make_user(username="slug-editor", staff=True)
    grant(editor, "change_article")
    api = APIClient()
    api.force_authenticate(editor)
    article = make_article(title="Storm over the coast")
    previewed = api.post(f"/api/articles/{article.id}/preview/", {"slug": ""}, format="json")
    page = api.post(f"/api/articles/{article.id}/preview/page/", {"slug": ""}, format="json")
    assert previewed.status_code == page.status_code == 200, page.content[:300]
    assert previewed.json()["slug"] == "storm-over-the-coast"
    assert 'href="http://' in page.content.decode() and "/articles/storm-over-the-coast/" in page.content.decode()
    patched = api.patch(f"/api/articles/{article.id}/", {"slug": ""}, format="json")
    assert patched.status_code == 200 and patched.json()["slug"] == "storm-over-the-coast"
    assert Client().get("/articles/storm-over-the-coast/").status_code == 200
