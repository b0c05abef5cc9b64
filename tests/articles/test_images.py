"""Hero images (issue 32): the admin's upload checks, the renditions made once per size with
content-hashed names, their headers, the page's srcset, the API's renditions, and an image change
invalidating the article's tags (never a file)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from articles import images, services
from articles import tags as T
from articles.models import Article
from caching.invalidation import on_invalidate
from newsite import file_cache
from tests.factories import make_article, make_user

pytestmark = pytest.mark.django_db

WIDTHS_TYPES = {(w, t) for w in (400, 800, 1200) for t in ("image/webp", "image/jpeg")}


def picture(width=1600, height=900, fmt="JPEG", colour=(30, 120, 200), mode="RGB") -> bytes:
    image = Image.new(mode, (width, height), colour)
    # Some structure, so encoders have work and different pictures have different bytes.
    for x in range(0, width, 97):
        image.paste((x % 255, 60, 90) if mode == "RGB" else (x % 255, 60, 90, 128), (x, 0, min(width, x + 40), height))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def upload(content: bytes, name="hero.jpg", content_type="image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


@pytest.fixture
def editor():
    user = make_user(username="picture-editor", staff=True)
    user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def change_form(article: Article, **changes) -> dict:
    data = {
        "title": article.title, "slug": article.slug, "excerpt": article.excerpt, "body": article.body,
        "author": article.author_id, "category": article.category_id, "status": article.status,
        "published_at_0": article.published_at.date().isoformat(),
        "published_at_1": article.published_at.time().strftime("%H:%M:%S"),
        "hero_image_url": article.hero_image_url, "loaded_version": article.version,
    }
    data.update(changes)
    return data


def post_image(editor, article, content: bytes, name="hero.jpg"):
    return editor.post(f"/admin/articles/article/{article.pk}/change/",
                       change_form(article, hero_image=upload(content, name)))


# --- upload checks: a bad file is a clear form error -----------------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"%PDF-1.4 not a picture at all", "hero.jpg", "Upload a valid image"),
        (picture(320, 200), "small.jpg", "The image is 320x200 pixels; a hero image needs at least 640x360."),
        (picture(8001, 400, fmt="PNG"), "wide.png", "The image is 8001x400 pixels; the largest accepted is 8000 pixels"),
        (picture(800, 450, fmt="GIF"), "anim.gif", "GIF images are not accepted: upload a JPEG, PNG or WebP picture."),
    ],
    ids=["not-an-image", "too-small", "too-many-pixels", "gif"],
)
def test_admin_refuses_a_bad_upload_with_a_clear_form_error(editor, content, name, message):
    article = make_article()
    response = post_image(editor, article, content, name)
    assert response.status_code == 200  # the form again, not a redirect
    errors = " ".join(str(e) for e in response.context["adminform"].form.errors.get("hero_image", []))
    assert message in errors, errors
    article.refresh_from_db()
    assert article.hero_image == "" and article.hero_renditions == []


def test_admin_refuses_a_file_over_the_size_limit(editor, monkeypatch):
    content = picture()
    monkeypatch.setattr(images, "MAX_UPLOAD_BYTES", len(content) - 1)
    response = post_image(editor, make_article(), content)
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["hero_image"])
    assert "the largest accepted is" in errors and "MB" in errors


# --- renditions: once per size, content-hashed names, through the storage API -------------------


def test_upload_in_the_admin_makes_hashed_webp_and_jpeg_renditions(editor):
    article = make_article()
    response = post_image(editor, article, picture())
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    article.refresh_from_db()
    assert article.version == 2
    assert re.fullmatch(r"heroes/[0-9a-f]{16}/original\.[0-9a-f]{12}\.jpg", article.hero_image.name)
    assert {(r["width"], r["type"]) for r in article.hero_renditions} == WIDTHS_TYPES
    for rendition in article.hero_renditions:
        with default_storage.open(rendition["name"]) as stored:
            content = stored.read()
        # The name carries the hash of the file's own bytes: it can be kept forever.
        assert hashlib.sha256(content).hexdigest()[:12] in rendition["name"]
        assert file_cache.is_hashed(rendition["name"])
        with Image.open(io.BytesIO(content)) as image:
            assert image.format == {"image/webp": "WEBP", "image/jpeg": "JPEG"}[rendition["type"]]
            assert image.size == (rendition["width"], rendition["height"])
            assert rendition["height"] == rendition["width"] * 9 // 16


def test_renditions_are_made_once_per_size_and_never_upscaled():
    content = picture(1000, 500, fmt="PNG", mode="RGBA", colour=(200, 40, 40, 0))
    first = images.store_upload(upload(content, "alpha.png", "image/png"))
    # Never upscaled: 1200 becomes the original's own 1000.
    assert sorted({(r["width"], r["height"]) for r in first.renditions}) == [(400, 200), (800, 400), (1000, 500)]
    stamps = {r["name"]: default_storage.get_modified_time(r["name"]) for r in first.renditions}
    time.sleep(0.05)
    # The same bytes again (another article, another editor): the same names, nothing re-encoded.
    again = images.store_upload(upload(content, "copy.png", "image/png"))
    assert again == first
    assert {r["name"]: default_storage.get_modified_time(r["name"]) for r in again.renditions} == stamps
    # Transparency is flattened on white (JPEG has none).
    jpeg = next(r for r in first.renditions if r["type"] == "image/jpeg")
    with default_storage.open(jpeg["name"]) as stored, Image.open(stored) as image:
        assert image.convert("RGB").getpixel((30, 30))[1] > 200


# --- what readers get: the page's srcset, OpenGraph, JSON-LD, the API ------------------------------


@pytest.fixture
def illustrated():
    article = make_article(title="A picture story")
    return services.article_update(article=article, data={"hero_image": upload(picture())})


def _by(renditions, media_type, width):
    return next(r for r in renditions if r["type"] == media_type and r["width"] == width)


def test_article_page_draws_the_renditions_with_srcset_sizes_and_a_box(illustrated, settings):
    html = Client().get(f"/articles/{illustrated.slug}/").content.decode()
    # Linked root-relative: fetched from whatever origin served the page (the edge).
    url = {(r["type"], r["width"]): settings.MEDIA_URL + r["name"] for r in illustrated.hero_renditions}
    webp = ", ".join(f"{url['image/webp', w]} {w}w" for w in (400, 800, 1200))
    jpeg = ", ".join(f"{url['image/jpeg', w]} {w}w" for w in (400, 800, 1200))
    picture_html = re.search(r"<picture>.*?</picture>", html, re.S).group(0)
    assert f'<source type="image/webp" srcset="{webp}" sizes="{images.SIZES}">' in picture_html
    img = re.search(r"<img [^>]*>", picture_html).group(0)
    assert f'src="{url["image/jpeg", 800]}"' in img and f'srcset="{jpeg}"' in img and f'sizes="{images.SIZES}"' in img
    assert 'width="800"' in img and 'height="450"' in img
    # The hero is the page's largest paint, above the fold: fetched first, not lazily.
    assert 'loading="eager"' in img and 'fetchpriority="high"' in img
    # Previews and search engines get an absolute URL, on SITE_URL.
    largest = settings.SITE_URL + url["image/jpeg", 1200]
    assert f'<meta property="og:image" content="{largest}">' in html
    assert '<meta property="og:image:width" content="1200">' in html
    assert '<meta property="og:image:height" content="675">' in html
    ld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S).group(1))
    assert ld["image"] == [largest]


def test_api_detail_carries_the_renditions_and_hero_image_url_names_the_largest_jpeg(illustrated, settings):
    detail = Client().get(f"/api/articles/{illustrated.pk}/").json()
    hero = detail["hero_image"]
    assert {(r["width"], r["type"]) for r in hero["renditions"]} == WIDTHS_TYPES
    largest = _by(hero["renditions"], "image/jpeg", 1200)
    assert (hero["src"], hero["width"], hero["height"]) == (largest["url"], 1200, 675)
    assert detail["hero_image_url"] == largest["url"]
    assert largest["url"] == settings.SITE_URL + settings.MEDIA_URL + _by(illustrated.hero_renditions, "image/jpeg", 1200)["name"]
    listed = next(i for i in Client().get("/api/articles/").json()["results"] if i["id"] == illustrated.pk)
    assert listed["hero_image_url"] == largest["url"] and "hero_image" not in listed
    # An article without an upload keeps its stored URL (the API's writable field).
    plain = make_article(hero_image_url="https://images.example.com/a.jpg")
    detail = Client().get(f"/api/articles/{plain.pk}/").json()
    assert detail["hero_image"] is None and detail["hero_image_url"] == "https://images.example.com/a.jpg"


# --- the files' headers: immutable on hashed names, short on others ------------------------------


def test_media_files_are_immutable_when_hashed_and_short_lived_otherwise(illustrated, settings):
    client = Client()
    webp = _by(illustrated.hero_renditions, "image/webp", 400)
    response = client.get(settings.MEDIA_URL + webp["name"])
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    with default_storage.open(webp["name"]) as stored:
        assert b"".join(response.streaming_content) == stored.read()
    unhashed = f"heroes/{webp['name'].split('/')[1]}/renditions-{images.RECIPE}.json"
    response = client.get(settings.MEDIA_URL + unhashed)
    assert response.status_code == 200 and response["Cache-Control"] == "public, max-age=60"
    # 304 on a revalidation (a short-lived one)
    again = client.get(settings.MEDIA_URL + unhashed, HTTP_IF_MODIFIED_SINCE=response["Last-Modified"])
    assert again.status_code == 304
    for missing in ("heroes/nothing-here.jpg", "../manage.py", "heroes/", "%2e%2e/manage.py"):
        assert client.get(settings.MEDIA_URL + missing).status_code == 404, missing
    assert client.post(settings.MEDIA_URL + webp["name"]).status_code == 405


# --- an image change invalidates the article's tags, never a file --------------------------------


@pytest.fixture
def invalidated():
    seen: list[frozenset[str]] = []
    on_invalidate.append(seen.append)
    yield seen
    on_invalidate.remove(seen.append)


def test_changing_the_image_invalidates_the_article_and_leaves_old_files_in_place(editor, illustrated, invalidated,
                                                                                   settings, django_capture_on_commit_callbacks):
    reader = Client()
    page = f"/articles/{illustrated.slug}/"
    old = _by(illustrated.hero_renditions, "image/jpeg", 800)
    assert old["name"] in reader.get(page).content.decode()
    assert reader.get(page)["X-Cache"].startswith("HIT")  # cached in the tiers
    illustrated.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):  # as the commit of a real request would
        response = post_image(editor, illustrated, picture(colour=(220, 200, 20)), "new.jpg")
    assert response.status_code == 302
    touched = frozenset().union(*invalidated)
    assert T.article_tag(illustrated.pk) in touched
    assert not any("media" in tag or "heroes/" in tag for tag in touched)  # tags only, never a file
    illustrated.refresh_from_db()
    new = _by(illustrated.hero_renditions, "image/jpeg", 800)
    assert new["name"] != old["name"]
    body = reader.get(page).content.decode()
    assert new["name"] in body and old["name"] not in body
    # The old file is still there, unchanged and immutable: a page cached before still shows it.
    response = reader.get(settings.MEDIA_URL + old["name"])
    assert response.status_code == 200 and response["Cache-Control"] == file_cache.FOREVER
    # Removing the image (the admin's Clear box) is an edit too: the page falls back to the box.
    illustrated.refresh_from_db()
    invalidated.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = editor.post(f"/admin/articles/article/{illustrated.pk}/change/",
                               change_form(illustrated, **{"hero_image-clear": "on"}))
    assert response.status_code == 302
    assert T.article_tag(illustrated.pk) in frozenset().union(*invalidated)
    illustrated.refresh_from_db()
    assert illustrated.hero_image == "" and illustrated.hero_renditions == []
    assert "<picture>" not in reader.get(page).content.decode()


def test_a_revert_brings_back_the_revision_s_picture_without_encoding_it_again(illustrated):
    first = list(illustrated.hero_renditions)
    revision = illustrated.history.order_by("-history_date").first().history_id  # the upload's revision
    services.article_update(article=Article.objects.get(pk=illustrated.pk),
                            data={"hero_image": upload(picture(colour=(250, 10, 10)), "other.jpg")})
    stamps = {r["name"]: default_storage.get_modified_time(r["name"]) for r in first}
    reverted = services.article_revert(article=Article.objects.get(pk=illustrated.pk), revision_id=revision)
    assert reverted.hero_renditions == first and reverted.hero_image.name == illustrated.hero_image.name
    assert {r["name"]: default_storage.get_modified_time(r["name"]) for r in first} == stamps


def test_an_image_below_the_fold_loads_lazily_in_its_box(illustrated):
    """articles/_picture.html: the hero (above the fold) is included with loading="eager"; any
    other image drawn with it (below the fold) is lazy, in the same reserved box and srcset."""
    from django.template.loader import render_to_string

    from articles import pages

    image = pages.hero_image(Client().get(f"/api/articles/{illustrated.pk}/").json())
    below = render_to_string("articles/_picture.html", {"image": image})
    img = re.search(r"<img [^>]*>", below).group(0)
    assert 'loading="lazy"' in img and "fetchpriority" not in img
    assert 'width="800" height="450"' in img and f'sizes="{images.SIZES}"' in img
    assert '<source type="image/webp"' in below


def test_lists_draw_a_thumbnail_eager_above_the_fold_and_lazy_below(settings):
    """Home and category pages draw each pictured item's 400 px renditions (WebP, JPEG fallback)
    in a 128 px box of the picture's ratio (no layout shift): the first three eagerly (without
    fetchpriority: the hero's), the rest lazily; an article without a picture draws none. The
    JSON lists carry the same renditions as `thumbnail`."""
    from datetime import timedelta

    from tests.factories import make_category

    category = make_category()
    pictured = [make_article(category=category, ago=timedelta(minutes=10 + n)) for n in range(6)]
    for article in pictured:
        services.article_update(article=article, data={"hero_image": upload(picture())})  # one encode, shared
    bare = make_article(category=category, title="No picture here", ago=timedelta(minutes=1))
    renditions = Article.objects.get(pk=pictured[0].pk).hero_renditions
    webp, jpeg = _by(renditions, "image/webp", 400), _by(renditions, "image/jpeg", 400)
    for path in ("/", f"/category/{category.slug}/"):
        html = Client().get(path).content.decode()
        items = re.findall(r'<article class="summary".*?</article>', html, re.S)
        assert len(items) == 7 and "No picture here" in items[0]
        assert "<img" not in items[0] and "style=" not in items[0]
        for position, item in enumerate(items[1:], start=2):
            img = re.search(r"<img [^>]*>", item).group(0)
            assert f'src="{settings.MEDIA_URL}{jpeg["name"]}"' in img
            assert f'srcset="{settings.MEDIA_URL}{jpeg["name"]} 400w"' in img and 'sizes="128px"' in img
            assert f'<source type="image/webp" srcset="{settings.MEDIA_URL}{webp["name"]} 400w"' in item
            assert 'width="128" height="72"' in img and 'alt=""' in img
            assert f'loading="{"eager" if position <= 3 else "lazy"}"' in img, (position, img)
            assert "fetchpriority" not in img
    listed = {item["id"]: item for item in Client().get("/api/articles/").json()["results"]}
    assert listed[bare.id]["thumbnail"] is None
    thumb = listed[pictured[0].id]["thumbnail"]
    assert thumb == images.thumbnail_data(renditions)
    assert {(r["width"], r["type"]) for r in thumb["renditions"]} == {(400, "image/webp"), (400, "image/jpeg")}
    assert thumb["src"].endswith(jpeg["name"]) and (thumb["width"], thumb["height"]) == (400, 225)
