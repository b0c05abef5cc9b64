"""Hero images: what an upload must be, its renditions, and their public description.

An upload is checked (type, bytes, pixel dimensions: `check_upload`, a ValidationError with a
sentence an editor can act on), then stored once by content: its SHA-256 names a folder of the
default storage (FileSystemStorage under MEDIA_ROOT here, an S3 bucket with django-storages):

    heroes/<sha 16>/original.<sha 12>.<ext>          the file as uploaded
    heroes/<sha 16>/<w>w.<hash 12>.webp | .jpg       one rendition per width and format
    heroes/<sha 16>/renditions-<recipe>.json         what was made (read back on a re-upload)

A rendition's name carries the hash of its own bytes, so it can be cached forever by the browser
and the edge (newsite/file_cache.py); a new image is a new name, so changing an article's image
invalidates the article's tags (its row changed) and never a file. The same bytes uploaded again
(another article, the demo data) find that JSON file and encode nothing: each size is made once.

Costs: an upload decodes the image once and encodes len(WIDTHS) x 2 files (about 0.1-0.5 s for a
12 Mpx photo); a re-upload reads one small JSON file. Reads (`hero_image_data`) only build URLs.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError

# Rendition widths (CSS pixels at 1x..3x of a phone, a desktop column at 1x and 2x); a width
# above the original's is not made (never upscaled), the original's own width stands in for it.
WIDTHS = (400, 800, 1200)
FORMATS = (("image/webp", "webp", "WEBP", {"quality": 78, "method": 4}),
           ("image/jpeg", "jpg", "JPEG", {"quality": 80, "optimize": True, "progressive": True}))
ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MIN_WIDTH, MIN_HEIGHT = 640, 360
MAX_SIDE = 8000
MAX_PIXELS = 40_000_000
# The recipe above, versioned: a change of WIDTHS, FORMATS or their options makes new renditions
# (another JSON file name) instead of reusing the old ones.
RECIPE = "v1"
FOLDER = "heroes"
# The page draws the hero at the column's width (articles/templates/articles/base.html: full width
# on a phone, 44rem from 48rem up).
SIZES = "(min-width: 48rem) 44rem, 100vw"


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed check_upload: its bytes, Pillow format and pixel size."""

    content: bytes
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class StoredHero:
    """What an article keeps of its hero image: the original's storage name and the renditions
    (each {"name", "width", "height", "type"}), the values of Article.hero_image and
    Article.hero_renditions."""

    name: str
    renditions: list[dict]


def check_upload(upload) -> CheckedUpload:
    """The upload (a Django File) if it is a JPEG, PNG or WebP of at most MAX_UPLOAD_BYTES and
    MIN_WIDTH x MIN_HEIGHT to MAX_SIDE x MAX_SIDE (MAX_PIXELS) pixels, else ValidationError. Reads
    the header only (no decode), so an oversized or hostile file costs no memory."""
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_UPLOAD_BYTES:
        raise ValidationError(f"The image is {size / 1_048_576:.1f} MB; the largest accepted is "
                              f"{MAX_UPLOAD_BYTES // 1_048_576} MB.", code="image_too_large")
    upload.seek(0)
    content = upload.read(MAX_UPLOAD_BYTES + 1)
    upload.seek(0)
    if len(content) > MAX_UPLOAD_BYTES:
        raise ValidationError(f"The image is larger than {MAX_UPLOAD_BYTES // 1_048_576} MB.", code="image_too_large")
    try:
        with Image.open(io.BytesIO(content)) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValidationError("This file is not an image (a JPEG, PNG or WebP picture is expected).",
                              code="not_an_image") from exc
    if kind not in ACCEPTED_FORMATS:
        raise ValidationError(f"{kind} images are not accepted: upload a JPEG, PNG or WebP picture.", code="image_type")
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValidationError(f"The image is {width}x{height} pixels; a hero image needs at least "
                              f"{MIN_WIDTH}x{MIN_HEIGHT}.", code="image_too_small")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ValidationError(f"The image is {width}x{height} pixels; the largest accepted is {MAX_SIDE} pixels a "
                              f"side and {MAX_PIXELS // 1_000_000} megapixels.", code="image_too_big")
    return CheckedUpload(content=content, format=kind, width=width, height=height)


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _manifest_name(folder: str) -> str:
    return f"{folder}/renditions-{RECIPE}.json"


def _save(name: str, content: bytes) -> str:
    """Save unless a file of that (content-hashed) name exists; the stored name."""
    if default_storage.exists(name):
        return name
    return default_storage.save(name, ContentFile(content))


def _encode(image: Image.Image, width: int, pillow_format: str, options: dict) -> tuple[bytes, int]:
    height = max(1, round(image.height * width / image.width))
    resized = image if width == image.width else image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    resized.save(out, pillow_format, **options)
    return out.getvalue(), height


def _flat_rgb(image: Image.Image) -> Image.Image:
    """Upright (EXIF orientation applied), RGB, transparency on white; no metadata carried on."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def store_hero(checked: CheckedUpload) -> StoredHero:
    """Store the original and its renditions, or find them (same bytes, same folder): a
    StoredHero. Safe to run twice at once: both write the same names with the same bytes."""
    sha = _digest(checked.content)
    folder = f"{FOLDER}/{sha[:16]}"
    original = _save(f"{folder}/original.{sha[:12]}.{ACCEPTED_FORMATS[checked.format]}", checked.content)
    manifest = _manifest_name(folder)
    if default_storage.exists(manifest):
        with default_storage.open(manifest) as made:
            return StoredHero(name=original, renditions=json.load(made))
    with Image.open(io.BytesIO(checked.content)) as source:
        image = _flat_rgb(source)
    widths = sorted({min(width, image.width) for width in WIDTHS})
    renditions = []
    for media_type, extension, pillow_format, options in FORMATS:
        for width in widths:
            content, height = _encode(image, width, pillow_format, options)
            name = _save(f"{folder}/{width}w.{_digest(content)[:12]}.{extension}", content)
            renditions.append({"name": name, "width": width, "height": height, "type": media_type})
    _save(manifest, json.dumps(renditions).encode())
    return StoredHero(name=original, renditions=renditions)


def store_upload(upload) -> StoredHero:
    """check_upload, then store_hero."""
    return store_hero(check_upload(upload))


# --- reads: the public description of an article's hero image ------------------------------------


def media_url(name: str) -> str:
    """The absolute URL of a stored file: the storage's URL on settings.SITE_URL (a bucket's or a
    CDN's absolute MEDIA_URL passes through)."""
    url = default_storage.url(name)
    return url if url.startswith(("http://", "https://")) else settings.SITE_URL + url


def hero_image_data(renditions: list[dict] | None) -> dict | None:
    """The API's `hero_image`: {"src", "width", "height", "renditions": [{"url", "width",
    "height", "type"}]} (`src`: the largest JPEG, the one every client can show; the page and
    OpenGraph use it too), or None for an article without an uploaded image."""
    if not renditions:
        return None
    items = [{"url": media_url(r["name"]), "width": r["width"], "height": r["height"], "type": r["type"]}
             for r in renditions]
    largest = max((i for i in items if i["type"] == "image/jpeg"), key=lambda i: i["width"])
    return {"src": largest["url"], "width": largest["width"], "height": largest["height"], "renditions": items}


def thumbnail_data(renditions: list[dict] | None) -> dict | None:
    """A list item's `thumbnail`: hero_image_data of the smallest width's renditions alone (the
    400 px WebP and JPEG; `src` the JPEG), or None for an article without an uploaded image."""
    if not renditions:
        return None
    smallest = min(r["width"] for r in renditions)
    return hero_image_data([r for r in renditions if r["width"] == smallest])


def page_url(url: str) -> str:
    """`url` as a page links it: root-relative when it is on SITE_URL, so the browser fetches it
    from the origin that served the page (the edge in front, whatever its host or port)."""
    return url[len(settings.SITE_URL):] if url.startswith(settings.SITE_URL + "/") else url


def srcset(hero: dict, media_type: str) -> str:
    """`url 400w, url 800w, ...` of one format's renditions, as the page links them."""
    return ", ".join(f"{page_url(r['url'])} {r['width']}w" for r in hero["renditions"] if r["type"] == media_type)
