"""Static files and images through the real stack (issue 32): `collectstatic` (whitenoise's
compressed manifest storage), the web server as `make up` runs it, and Varnish with default.vcl in
front. Hashed static names and image renditions leave the app `public, max-age=31536000,
immutable`, unhashed files `public, max-age=60`; the pages name the hashed static files; the edge
keeps both kinds (a second GET is an edge HIT), whatever the query string or the reader's
cookies."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import requests
from django.conf import settings
from PIL import Image

from articles import images
from newsite import file_cache
from tests.cdn.servers import Varnish
from tests.factories import make_article
from tests.support import REPO, WebServer, app_env, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PLACEHOLDER = "articles/hero-placeholder.jpg"


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """`manage.py collectstatic` into a directory of this module's own."""
    root = tmp_path_factory.mktemp("static")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=REPO, check=True,
                   env=app_env(STATIC_ROOT=str(root)), timeout=300)
    return root


@pytest.fixture
def stack(static_root, tmp_path):
    """The web server (granian, 1 worker) serving `static_root`, and Varnish in front."""
    env = app_env(STATIC_ROOT=str(static_root), MEDIA_ROOT=settings.MEDIA_ROOT, WEB_PIDFILE=str(tmp_path / "web.pid"))
    app = WebServer(port=free_port(), workdir=tmp_path, env=env, workers=1)
    edge = None
    try:
        app.wait_ready(60)
        edge = Varnish(app.port).start()
        yield app, edge
    finally:
        if edge is not None:
            edge.close()
        app.stop()


def hashed_static(static_root, name: str) -> str:
    return json.loads((static_root / "staticfiles.json").read_text())["paths"][name]


def rendition(width: int, media_type: str) -> str:
    picture = io.BytesIO()
    Image.new("RGB", (1280, 720), (90, 30, 160)).save(picture, "JPEG")
    stored = images.store_hero(images.CheckedUpload(content=picture.getvalue(), format="JPEG", width=1280, height=720))
    return next(r["name"] for r in stored.renditions if r["width"] == width and r["type"] == media_type)


def test_static_files_hashed_forever_unhashed_briefly_and_the_page_names_the_hashed_one(stack, static_root):
    app, _ = stack
    hashed = hashed_static(static_root, PLACEHOLDER)
    assert file_cache.is_hashed(hashed) and hashed != PLACEHOLDER
    response = requests.get(f"{app.url}/static/{hashed}", timeout=10)
    assert response.status_code == 200 and response.headers["Cache-Control"] == file_cache.FOREVER
    assert response.content == (static_root / hashed).read_bytes()
    response = requests.get(f"{app.url}/static/{PLACEHOLDER}", timeout=10)
    assert response.status_code == 200 and response.headers["Cache-Control"] == file_cache.SHORT
    # CSS of the admin, compressed beside it by collectstatic: served gzip'd, still immutable.
    css = hashed_static(static_root, "admin/css/base.css")
    response = requests.get(f"{app.url}/static/{css}", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Cache-Control"] == file_cache.FOREVER
    # Without an uploaded image the article page shows the placeholder, by its hashed name.
    article = make_article(title="No picture yet")
    page = requests.get(f"{app.url}/articles/{article.slug}/", timeout=10).text
    assert f'src="/static/{hashed}"' in page and f'src="/static/{PLACEHOLDER}"' not in page


def test_the_edge_keeps_static_files_and_renditions(stack, static_root):
    app, edge = stack
    webp = rendition(400, "image/webp")
    files = {
        f"/static/{hashed_static(static_root, PLACEHOLDER)}": file_cache.FOREVER,
        f"/static/{PLACEHOLDER}": file_cache.SHORT,
        f"{settings.MEDIA_URL}{webp}": file_cache.FOREVER,
        f"{settings.MEDIA_URL}{rendition(1200, 'image/jpeg')}": file_cache.FOREVER,
    }
    for path, cache_control in files.items():
        first = edge.get(path)
        assert first.status_code == 200, (path, first.status_code)
        assert first.headers["Cache-Control"] == cache_control, path
        assert first.headers["X-Cache-Edge"] == "MISS", path
        again = edge.get(path)
        assert again.headers["X-Cache-Edge"] == "HIT" and again.content == first.content, path
        # A signed-in editor's cookies and a cache buster in the query string change nothing.
        busted = edge.get(path + "?v=2", headers={"Cookie": "sessionid=abc; csrftoken=def"})
        assert busted.headers["X-Cache-Edge"] == "HIT" and busted.content == first.content, path
    webp_response = edge.get(f"{settings.MEDIA_URL}{webp}")
    assert webp_response.headers["Content-Type"] == "image/webp"
    with Image.open(io.BytesIO(webp_response.content)) as image:
        assert image.size == (400, 225)
