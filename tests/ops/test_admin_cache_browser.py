"""The admin Cache page in a real browser: Debian's headless Chromium driven by selenium through
Debian's chromedriver (nothing is downloaded at run time). Saves docs/screenshots/admin-cache.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

import caching.engine
import caching.fetcher
from tests import support
from tests.factories import make_article, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The committed screenshot is refreshed only on request (UPDATE_SCREENSHOTS=1), so a test run
# leaves the work tree clean.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "admin-cache.png"


@pytest.fixture
def browser():
    with support.chromium(width=1400, height=1800) as driver:
        yield driver


def test_admin_cache_page_draws_the_chart(live_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    make_user(username="editor", staff=True, password="pw-12345!").__class__.objects.filter(
        username="editor"
    ).update(is_superuser=True)
    articles = [make_article() for _ in range(3)]
    # Some traffic through the tiers of the live server (same process): misses, then L2 hits
    # (L1 emptied), then L1 hits.
    for round_ in range(3):
        if round_ == 1:
            caching.fetcher.clear_local()
        for article in articles:
            assert requests.get(f"{live_server.url}/api/articles/{article.pk}/", timeout=10).status_code == 200
        assert requests.get(f"{live_server.url}/api/articles/", timeout=10).status_code == 200
    assert requests.get(f"{live_server.url}/api/articles/987654/", timeout=10).status_code == 404

    browser.get(f"{live_server.url}/admin/login/?next=/admin/cache/")
    browser.find_element(By.NAME, "username").send_keys("editor")
    browser.find_element(By.NAME, "password").send_keys("pw-12345!")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "chart-since-start")))
    assert browser.current_url.endswith("/admin/cache/")

    chart = browser.find_element(By.CSS_SELECTOR, "#chart-since-start svg.cache-chart")
    assert chart.size["width"] > 300 and chart.size["height"] > 60
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    assert len(bars) >= 2, "hit ratio bars should be drawn"
    assert any(float(bar.get_attribute("width")) > 0 for bar in bars)
    labels = [t.text for t in chart.find_elements(By.TAG_NAME, "text")]
    assert "resp.api-article" in labels
    assert browser.find_element(By.ID, "purge").is_displayed()

    screenshot = DOCS_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "admin-cache.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
