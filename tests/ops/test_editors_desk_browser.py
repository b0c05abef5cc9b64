"""The editor's desk in a real browser (issue 33): the Cache page's chart labels fully visible at
1400 px, linked from the admin index; a share-link preview; the revision history with its field
diff. Screenshots go to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (else to the test's tmp dir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from articles import preview, services
from tests import support
from tests.factories import make_article, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _shot(browser, name: str, tmp_path: Path) -> None:
    path = SCREENSHOTS / name if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000


def _login(browser, live_server, next_path: str):
    from selenium.webdriver.common.by import By

    user = make_user(username="desk", staff=True, password="pw-12345!")
    user.is_superuser = True
    user.save()
    browser.get(f"{live_server.url}/admin/login/?next={next_path}")
    browser.find_element(By.NAME, "username").send_keys("desk")
    browser.find_element(By.NAME, "password").send_keys("pw-12345!")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    return user


def test_cache_page_is_linked_from_the_index_and_its_labels_fit_at_1400(live_server, tmp_path):
    import requests
    from selenium.webdriver.common.by import By

    articles = [make_article() for _ in range(3)]
    for _ in range(2):
        for article in articles:
            requests.get(f"{live_server.url}/api/articles/{article.pk}/", timeout=10)
    with support.chromium(width=1400, height=1400) as browser:
        _login(browser, live_server, "/admin/")
        browser.find_element(By.CSS_SELECTOR, 'a[href="/admin/cache/"]').click()
        chart = browser.find_element(By.CSS_SELECTOR, "#chart-since-start svg.cache-chart")
        right = chart.rect["x"] + chart.rect["width"]
        labels = [t for t in chart.find_elements(By.TAG_NAME, "text") if "% of " in t.text]
        assert labels, "value labels drawn"
        for label in labels:
            assert label.rect["x"] + label.rect["width"] <= right + 0.5, (label.text, label.rect, right)
        _shot(browser, "admin-cache.png", tmp_path)


def test_preview_and_revision_history_screens(live_server, tmp_path):
    from selenium.webdriver.common.by import By

    article = make_article(title="Budget vote moved to Wednesday", published=False)
    services.article_update(article=article, data={"title": "Council budget vote moved to Wednesday",
                                                   "excerpt": "The vote was delayed by a day."})
    url = preview.links(article)["url"]
    with support.chromium(width=1280, height=1000) as browser:
        browser.get(live_server.url + url)
        assert "Preview" in browser.find_element(By.CLASS_NAME, "preview-banner").text
        assert browser.find_element(By.TAG_NAME, "h1").text == "Council budget vote moved to Wednesday"
        _shot(browser, "preview.png", tmp_path)
        _login(browser, live_server, f"/admin/articles/article/{article.pk}/history/")
        table = browser.find_element(By.ID, "change-history")
        assert "Budget vote moved to Wednesday" in table.text and "Revert to this revision" in table.text
        _shot(browser, "revisions.png", tmp_path)
