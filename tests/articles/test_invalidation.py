"""Every write invalidates what it touched, after commit: the very next GET shows the change."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from rest_framework.authtoken.models import Token

from articles import services
from articles.invalidation import article_tags_for_change, snapshot
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run the on_commit callbacks of what happens inside, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def world():
    cat = make_category(name="World")
    other = make_category(name="Sports")
    author = make_author(name="Ada Writer")
    article = make_article(author=author, category=cat, title="Original title", ago=timedelta(minutes=5))
    return {"cat": cat, "other": other, "author": author, "article": article}


@pytest.fixture
def editor():
    user = make_user(username="editor", staff=True)
    user.is_superuser = True
    user.save()
    make_author(name="Ed", user=user)
    return user


def warm(client, *paths):
    for path in paths:
        client.get(path)
        assert client.get(path)["X-Cache"].startswith("HIT"), path


def titles(client, path):
    return [a["title"] for a in client.get(path).json()["results"]]


def test_editorial_patch_is_seen_by_the_next_get(world, editor, commit):
    client, a = Client(), world["article"]
    paths = [f"/api/articles/{a.id}/", "/api/articles/", f"/api/categories/{world['cat'].slug}/articles/", f"/articles/{a.slug}/"]
    warm(client, *paths)
    token = Token.objects.create(user=editor)
    with commit():
        response = client.patch(
            f"/api/articles/{a.id}/", {"title": "Edited title"}, content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token.key}",
        )
        assert response.status_code == 200
    assert client.get(paths[0]).json()["title"] == "Edited title"
    assert titles(client, paths[1]) == ["Edited title"]
    assert titles(client, paths[2]) == ["Edited title"]
    assert b"Edited title" in client.get(paths[3]).content


def test_admin_save_is_seen_by_the_next_get(world, editor, commit):
    client, a = Client(), world["article"]
    warm(client, f"/api/articles/{a.id}/", "/api/articles/")
    admin = Client()
    admin.force_login(editor)
    form = {
        "title": "Admin title", "slug": a.slug, "excerpt": a.excerpt, "body": a.body, "author": a.author_id,
        "category": a.category_id, "status": "published", "published_at_0": a.published_at.strftime("%Y-%m-%d"),
        "published_at_1": a.published_at.strftime("%H:%M:%S"), "hero_image_url": "",
    }
    with commit():
        assert admin.post(f"/admin/articles/article/{a.id}/change/", form).status_code == 302
    assert client.get(f"/api/articles/{a.id}/").json()["title"] == "Admin title"
    assert titles(client, "/api/articles/") == ["Admin title"]


def test_comment_and_like_update_the_counts(world, commit):
    client, a = Client(), world["article"]
    path = f"/api/articles/{a.id}/"
    warm(client, path)
    reader = Client()
    reader.force_login(make_user())
    with commit():
        assert reader.post(f"/api/articles/{a.id}/comments/", {"body": "Hi"}, content_type="application/json").status_code == 201
    assert client.get(path).json()["comment_count"] == 1
    with commit():
        assert reader.post(f"/api/articles/{a.id}/like/").status_code == 201
    assert client.get(path).json()["like_count"] == 1


def test_category_move_updates_both_feeds(world, commit):
    client, a = Client(), world["article"]
    old_feed = f"/api/categories/{world['cat'].slug}/articles/"
    new_feed = f"/api/categories/{world['other'].slug}/articles/"
    warm(client, old_feed, new_feed)
    with commit():
        services.article_update(article=a, data={"category": world["other"]})
    assert titles(client, old_feed) == []
    assert titles(client, new_feed) == ["Original title"]


def test_unpublish_and_delete(world, commit):
    client, a = Client(), world["article"]
    warm(client, f"/api/articles/{a.id}/", "/api/articles/", "/api/search/?q=original")
    with commit():
        services.article_unpublish(article=a)
    assert client.get(f"/api/articles/{a.id}/").status_code == 404
    assert titles(client, "/api/articles/") == []
    assert titles(client, "/api/search/?q=original") == []
    with commit():
        services.article_publish(article=a)
    republished = client.get(f"/api/articles/{a.id}/")
    assert republished.status_code == 200 and republished.json()["title"] == "Original title"
    with commit():
        services.article_delete(article=a)
    assert client.get(f"/api/articles/{a.id}/").status_code == 404
    assert titles(client, "/api/articles/") == []


def test_breaking_flag_either_way(world, commit):
    client, a = Client(), world["article"]
    warm(client, "/api/breaking-news/")
    with commit():
        services.article_update(article=a, data={"is_breaking": True})
    assert titles(client, "/api/breaking-news/") == ["Original title"]
    with commit():
        services.article_update(article=a, data={"is_breaking": False})
    assert titles(client, "/api/breaking-news/") == []


def test_new_article_appears_in_feeds_and_removes_its_negative(world, commit):
    client = Client()
    warm(client, "/api/articles/", "/articles/brand-new/")
    assert client.get("/articles/brand-new/").status_code == 404
    with commit():
        services.article_create(
            author=world["author"], category=world["cat"], title="Brand new", slug="brand-new", status="published"
        )
    assert titles(client, "/api/articles/")[0] == "Brand new"
    page = client.get("/articles/brand-new/")
    assert page.status_code == 200 and b"Brand new" in page.content


def test_author_and_category_renames(world, commit):
    client, a = Client(), world["article"]
    warm(client, f"/api/articles/{a.id}/", "/api/articles/", "/api/categories/")
    with commit():
        world["author"].name = "Ada Renamed"
        world["author"].save()
        world["cat"].name = "Planet"
        world["cat"].save()
    detail = client.get(f"/api/articles/{a.id}/").json()
    assert detail["author"]["name"] == "Ada Renamed" and detail["category"]["name"] == "Planet"
    assert client.get("/api/articles/").json()["results"][0]["author"]["name"] == "Ada Renamed"
    assert "Planet" in [c["name"] for c in client.get("/api/categories/").json()["results"]]


def test_rollback_invalidates_nothing(world, commit):
    client, a = Client(), world["article"]
    path = f"/api/articles/{a.id}/"
    warm(client, path)
    with commit():
        with pytest.raises(RuntimeError), transaction.atomic():
            services.article_update(article=a, data={"title": "Never committed"})
            raise RuntimeError("roll back")
    response = client.get(path)
    assert response["X-Cache"].startswith("HIT") and response.json()["title"] == "Original title"


def test_profile_write_through(commit):
    user = make_user(username="rita")
    client = Client()
    client.force_login(user)
    assert client.get("/api/user/profile/").json()["first_name"] == ""
    with commit():
        response = client.patch("/api/user/profile/", {"first_name": "Rita"}, content_type="application/json")
    assert response.status_code == 200
    assert client.get("/api/user/profile/").json()["first_name"] == "Rita"
    author = make_author()
    with commit():
        client.post("/api/user/follows/", {"author_id": author.id}, content_type="application/json")
    assert client.get("/api/user/profile/").json()["follows"]["authors"] == [author.id]


def test_tag_matrix_for_drafts_and_moves(world):
    a = world["article"]
    draft = {**snapshot(a), "status": "draft"}
    assert article_tags_for_change(draft, {**draft, "title": "x"}) == {f"article:{a.id}", f"article-slug:{a.slug}"}
    moved = {**snapshot(a), "category_id": world["other"].id}
    tags = article_tags_for_change(snapshot(a), moved)
    assert {f"feed:category:{world['cat'].id}", f"feed:category:{world['other'].id}", "feed:home"} <= tags
    text_only = article_tags_for_change(snapshot(a), {**snapshot(a), "body": "new"})
    assert "search" in text_only and "feed:home" not in text_only


def test_admin_purge_action_and_invalidate_tag_command(world, editor, commit):
    from django.core.management import call_command

    client, a = Client(), world["article"]
    warm(client, f"/api/articles/{a.id}/", "/api/articles/")
    admin = Client()
    admin.force_login(editor)
    with commit():
        admin.post("/admin/articles/article/", {"action": "purge_from_caches", "_selected_action": [a.id]})
    assert client.get(f"/api/articles/{a.id}/")["X-Cache"] == "MISS"
    assert client.get("/api/articles/")["X-Cache"] == "MISS"
    warm(client, "/api/articles/")
    with commit():
        call_command("invalidate_tag", "feed:home")
    assert client.get("/api/articles/")["X-Cache"] == "MISS"
