"""The freshness chart of the admin Cache page in headless Chromium (Debian's, through selenium):
real invalidations (commit -> L2 and L1 lag observed by this process) and a real canary run
against the live server. UPDATE_SCREENSHOTS=1 refreshes docs/screenshots/admin-cache-freshness.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import transaction

import caching
from newsite.ops import canary
from tests.factories import make_user
from tests.ops.test_admin_cache_browser import browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "admin-cache-freshness.png"


def test_admin_cache_page_draws_the_freshness_chart(live_server, browser, settings, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    settings.FRESHNESS_CANARY_APP_URL = live_server.url
    settings.FRESHNESS_CANARY_EDGE_URLS = []
    settings.FRESHNESS_CANARY_TIMEOUT = 5.0
    user = make_user(username="editor", staff=True, password="pw-12345!")
    user.__class__.objects.filter(pk=user.pk).update(is_superuser=True)
    for n in range(5):  # writes: commit -> L2 and commit -> L1 (this process's subscriber) observed
        with transaction.atomic():
            caching.invalidate_tags_on_commit([f"article:{900 + n}"])
    result = canary.run()
    assert result["tiers"]["l1"]["fresh"] and result["tiers"]["l2"]["fresh"], result

    browser.get(f"{live_server.url}/admin/login/?next=/admin/cache/")
    browser.find_element(By.NAME, "username").send_keys("editor")
    browser.find_element(By.NAME, "password").send_keys("pw-12345!")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "chart-freshness")))
    chart = browser.find_element(By.CSS_SELECTOR, "#chart-freshness svg.freshness-chart")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    labels = [t.text for t in chart.find_elements(By.TAG_NAME, "text")]
    assert {"lag l2", "lag l1", "lag cdn", "canary l2", "canary l1"} <= set(labels), labels
    assert chart.find_elements(By.CSS_SELECTOR, "rect.fresh-p99"), "lag bars are drawn"
    assert chart.find_elements(By.CSS_SELECTOR, "rect.fresh-canary"), "canary bars are drawn"
    assert "every tier fresh" in browser.find_element(By.ID, "chart-freshness").text

    browser.execute_script("document.getElementById('chart-freshness').scrollIntoView()")
    screenshot = DOCS_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "admin-cache-freshness.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
