"""The editor's desk in a real browser (issue 33): the Cache page's chart labels fully visible at
1280, 1400 and 1920 px, linked from the admin index; a share-link preview; the revision history with its field
diff. Screenshots go to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (else to the test's tmp dir)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from articles import demo_data, preview, services
from articles.models import Article
from tests import support
from tests.factories import make_article, make_author, make_category, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _shot(browser, name: str, tmp_path: Path, keep: bool = True) -> None:
    path = SCREENSHOTS / name if keep and os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000


def _user():
    """The superuser the browser logs in as (made once per test)."""
    user = get_user_model().objects.filter(username="desk").first()
    if user is None:
        user = make_user(username="desk", staff=True, password="pw-12345!")
        user.is_superuser = True
        user.save()
    return user


def _login(browser, live_server, next_path: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    user = _user()
    browser.get(f"{live_server.url}/admin/login/?next={next_path}")
    browser.find_element(By.NAME, "username").send_keys("desk")
    browser.find_element(By.NAME, "password").send_keys("pw-12345!")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The click does not wait for the next page: a find right after it may search the login page.
    WebDriverWait(browser, 20).until(lambda d: "/admin/login/" not in d.current_url)
    return user


@pytest.mark.parametrize("width", [1280, 1400, 1920])
def test_cache_page_is_linked_from_the_index_and_its_labels_fit(live_server, tmp_path, width):
    """At the common desktop widths every chart lies inside its card and the window (no
    horizontal scroll to reach it) and every label of it inside the chart."""
    import requests
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    articles = [make_article() for _ in range(3)]
    for _ in range(2):
        for article in articles:
            requests.get(f"{live_server.url}/api/articles/{article.pk}/", timeout=10)
    with support.chromium(width=width, height=1400) as browser:
        _login(browser, live_server, "/admin/")
        WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'a[href="/admin/cache/"]'))
        browser.find_element(By.CSS_SELECTOR, 'a[href="/admin/cache/"]').click()
        WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "chart-freshness"))
        window = browser.execute_script("return document.documentElement.clientWidth")
        for card_id in ("chart-since-start", "chart-recent", "chart-freshness"):
            card = browser.find_element(By.ID, card_id)
            chart = card.find_element(By.CSS_SELECTOR, "svg.cache-chart")
            left, right = chart.rect["x"], chart.rect["x"] + chart.rect["width"]
            assert card.rect["x"] <= left and right <= card.rect["x"] + card.rect["width"] + 0.5, (card_id, width)
            assert right <= window, (card_id, right, window)
            labels = [t for t in chart.find_elements(By.TAG_NAME, "text") if t.text.strip()]
            assert any("% of " in t.text or " ms" in t.text for t in labels), f"{card_id}: value labels drawn"
            for label in labels:
                box = label.rect
                assert left - 0.5 <= box["x"] and box["x"] + box["width"] <= right + 0.5, (card_id, label.text, box, right)
        _shot(browser, "admin-cache.png" if width == 1400 else f"admin-cache-{width}.png", tmp_path,
              keep=width == 1400)


def test_preview_and_revision_history_screens(live_server, tmp_path):
    """A scheduled story with its picture, opened by its share link (no account), then its
    History as the editor who wrote it sees it: who, when, the field diff, the revert links."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    editor = _user()
    article = services.article_create(
        author=make_author(name="Ada Lovelace"), category=make_category(name="Politics"), by=editor,
        title="Budget vote moved to Wednesday", status=Article.Status.PUBLISHED,
        published_at=timezone.now() + timedelta(days=1), excerpt="The council meets a day later than planned.",
        body="The council's budget vote will take place on Wednesday.\n\nThe agenda is unchanged.",
        hero_image=SimpleUploadedFile("council.jpg", demo_data.hero_picture_jpeg(5), content_type="image/jpeg"))
    services.article_update(article=article, by=editor, data={
        "title": "Council budget vote moved to Wednesday", "excerpt": "The vote was delayed by a day."})
    url = preview.links(article)["url"]
    with support.chromium(width=1280, height=1000) as browser:
        browser.get(live_server.url + url)
        assert "Preview" in browser.find_element(By.CLASS_NAME, "preview-banner").text
        assert browser.find_element(By.TAG_NAME, "h1").text == "Council budget vote moved to Wednesday"
        hero = browser.find_element(By.CSS_SELECTOR, "figure.hero img")
        WebDriverWait(browser, 20).until(lambda d: d.execute_script("return arguments[0].complete", hero))
        assert "/media/heroes/" in browser.execute_script("return arguments[0].currentSrc", hero)
        _shot(browser, "preview.png", tmp_path)
        _login(browser, live_server, f"/admin/articles/article/{article.pk}/history/")
        table = browser.find_element(By.ID, "change-history")
        assert "Budget vote moved to Wednesday" in table.text and "Revert to this revision" in table.text
        assert table.text.count(editor.username) == 2  # who made each revision
        _shot(browser, "revisions.png", tmp_path)
