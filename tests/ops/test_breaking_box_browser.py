"""The breaking box updates itself in a real browser (issue 31): Debian's headless Chromium opens
the home page, an editor publishes a breaking story through the API, and the box shows it without
a reload (articles/static/articles/breaking-box.js polling /api/breaking-news/); the article page's
box is filled by the script. Saves docs/screenshots/breaking-box-before.png and
breaking-box-after.png when UPDATE_SCREENSHOTS=1 (otherwise into the test's tmp dir)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from rest_framework.authtoken.models import Token

from articles import pages
from tests import support
from tests.articles.conftest import grant
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
POLL_SECONDS = 5  # the script's shortest interval


def screenshot_path(name: str, tmp_path: Path) -> Path:
    return (SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path) / name


@pytest.fixture
def desktop():
    with support.chromium(width=1000, height=560) as driver:
        yield driver


def box_state(driver) -> dict:
    """What the reader sees in the box: its text and its links (None: no box)."""
    return driver.execute_script("""
        var s = document.querySelector('#breaking-box section.breaking');
        if (!s) { return null; }
        return {text: s.textContent.replace(/\\s+/g, ' ').trim(), label: s.getAttribute('aria-label'),
                links: Array.from(s.querySelectorAll('a')).map(function (a) { return a.getAttribute('href'); })};
    """)


def test_the_box_shows_a_new_breaking_story_without_a_reload(live_server, desktop, monkeypatch, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setattr(pages, "BREAKING_POLL_SECONDS", POLL_SECONDS)
    world, science = make_category(name="World"), make_category(name="Science")
    make_article(title="Coastal towns brace for the first winter storm", category=world, is_breaking=True,
                 ago=timedelta(minutes=30))
    make_article(title="Researchers map the ocean floor with sound", category=science, ago=timedelta(hours=2))
    reader_of = make_article(title="Late goal sends the home side to the cup final", ago=timedelta(hours=1))
    editor = make_user(username="desk", staff=True)
    grant(editor, "add_article", "change_article")
    make_author(name="News Desk", user=editor)
    token = Token.objects.create(user=editor).key

    desktop.get(f"{live_server.url}/")
    before = box_state(desktop)
    assert before["text"] == "Breaking: Coastal towns brace for the first winter storm"
    desktop.execute_script("window.notReloaded = true;")
    desktop.save_screenshot(str(screenshot_path("breaking-box-before.png", tmp_path)))

    response = requests.post(f"{live_server.url}/api/articles/", json={
        "title": "Bridge closed after river bursts its banks", "category_id": world.pk,
        "status": "published", "is_breaking": True,
    }, headers={"Authorization": f"Token {token}"}, timeout=30)
    assert response.status_code == 201, response.text
    slug = response.json()["slug"]

    # Within the poll interval (and a margin for this busy machine), on the same page.
    WebDriverWait(desktop, POLL_SECONDS * 4).until(lambda d: "Bridge closed" in (box_state(d) or {}).get("text", ""))
    assert desktop.execute_script("return window.notReloaded === true")
    after = box_state(desktop)
    assert after["text"] == ("Breaking: Bridge closed after river bursts its banks · "
                             "Coastal towns brace for the first winter storm")
    desktop.save_screenshot(str(screenshot_path("breaking-box-after.png", tmp_path)))

    # The script draws the box as the server does: a reload shows the same box.
    desktop.refresh()
    assert box_state(desktop) == after
    assert after["links"][0] == f"/articles/{slug}/" and after["label"] == "Breaking news"

    # The article page is served without the box; the script fills it at once.
    desktop.get(f"{live_server.url}/articles/{reader_of.slug}/")
    WebDriverWait(desktop, 15).until(lambda d: box_state(d) is not None)
    assert box_state(desktop) == after
