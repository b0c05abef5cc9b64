"""The public pages on a phone: Debian's headless Chromium (selenium, Debian's chromedriver,
nothing downloaded) at 390 CSS pixels wide renders the article page with its hero image (served
locally by the app's static files: the sandbox reaches no external image host) and the home
page without horizontal scrolling. Saves docs/screenshots/article-390.png and home-390.png when
UPDATE_SCREENSHOTS=1 (otherwise into the test's tmp dir, so a run leaves the work tree clean)."""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from pathlib import Path

import pytest

from articles.models import Article
from tests import support
from tests.factories import make_article, make_author, make_category

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE_WIDTH, PHONE_HEIGHT = 390, 844  # an iPhone 12-15 viewport in CSS pixels


@pytest.fixture
def phone():
    with support.chromium(width=PHONE_WIDTH, height=PHONE_HEIGHT) as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": PHONE_WIDTH, "height": PHONE_HEIGHT, "deviceScaleFactor": 1, "mobile": True,
        })
        yield driver


def full_page_png(driver, path: Path, *, max_height: int = 2400) -> None:
    """The page from the top, as tall as its content (up to max_height), 390 px wide."""
    height = min(max_height, driver.execute_script("return document.documentElement.scrollHeight"))
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": PHONE_WIDTH, "height": height, "scale": 1},
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def screenshot_path(name: str, tmp_path: Path) -> Path:
    return (SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path) / name


def story(*, excerpt: str, body: str = "", **fields) -> Article:
    """make_article with its own excerpt and body (set before any page is cached)."""
    article = make_article(**fields)
    Article.objects.filter(pk=article.pk).update(excerpt=excerpt, body=body or excerpt)
    return Article.objects.get(pk=article.pk)


@pytest.fixture
def newsroom(live_server):
    science, world, sport = make_category(name="Science"), make_category(name="World"), make_category(name="Sport")
    ada, bo = make_author(name="Ada Lovelace"), make_author(name="Bo Ramsey")
    hero = f"{live_server.url}/static/articles/hero-placeholder.jpg"
    lead = story(
        author=ada, category=science, title="A comet brighter than Venus will cross the evening sky this week",
        excerpt="Astronomers say the comet, last seen 6,000 years ago, will be visible to the naked eye from Tuesday.",
        body="The comet was first spotted in March by an amateur astronomer.\n\n"
             "It should be easiest to see just after sunset, low in the western sky, away from city lights.\n\n"
             "\"It is a once-in-a-lifetime sight,\" said the observatory's director.",
        hero_image_url=hero, ago=timedelta(minutes=40),
    )
    story(author=bo, category=world, title="Coastal towns brace for the first winter storm",
                 excerpt="Ferries are cancelled and schools closed as winds of up to 120 km/h are forecast.",
                 is_breaking=True, ago=timedelta(minutes=15))
    story(author=bo, category=sport, title="Late goal sends the home side to the cup final",
                 excerpt="A header in the 94th minute settled a tense semi-final.", ago=timedelta(hours=2))
    story(author=ada, category=science, title="Researchers map the ocean floor with sound",
                 excerpt="A fleet of autonomous boats charted an area the size of France in a month.", ago=timedelta(hours=5))
    return lead


def test_article_page_on_a_phone_shows_its_hero_image(live_server, phone, newsroom, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    phone.get(f"{live_server.url}/articles/{newsroom.slug}/")
    hero = phone.find_element(By.CSS_SELECTOR, "figure.hero img")
    WebDriverWait(phone, 15).until(lambda d: d.execute_script("return arguments[0].complete", hero))
    assert phone.execute_script("return arguments[0].naturalWidth", hero) == 1200
    assert phone.execute_script("return arguments[0].naturalHeight", hero) == 675
    assert phone.execute_script("return window.innerWidth") == PHONE_WIDTH
    # The image fills the column at 16:9 and nothing scrolls sideways.
    assert hero.size["width"] == PHONE_WIDTH and abs(hero.size["height"] - PHONE_WIDTH * 675 / 1200) <= 1
    assert phone.execute_script("return document.documentElement.scrollWidth") <= PHONE_WIDTH
    assert phone.find_element(By.TAG_NAME, "h1").text.startswith("A comet brighter than Venus")
    assert phone.find_element(By.CSS_SELECTOR, "p.meta time").text  # a human date
    full_page_png(phone, screenshot_path("article-390.png", tmp_path))


def test_home_page_on_a_phone(live_server, phone, newsroom, tmp_path):
    """The stories with an uploaded picture show its thumbnail beside the headline, inside the
    column; the lead (its picture elsewhere: hero_image_url) shows none."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from articles import demo_data, services

    for n, article in enumerate(Article.objects.exclude(pk=newsroom.pk)):
        services.article_update(article=article, data={"hero_image": SimpleUploadedFile(
            f"story-{n}.jpg", demo_data.hero_picture_jpeg(n + 4), content_type="image/jpeg")})
    phone.get(f"{live_server.url}/")
    assert phone.find_element(By.CSS_SELECTOR, "section.breaking").is_displayed()
    summaries = phone.find_elements(By.CSS_SELECTOR, "article.summary")
    assert len(summaries) == 4
    thumbnails = phone.find_elements(By.CSS_SELECTOR, "article.summary img")
    assert len(thumbnails) == 3
    assert not summaries[1].find_elements(By.TAG_NAME, "img")  # the lead, second newest
    WebDriverWait(phone, 20).until(lambda d: all(d.execute_script("return arguments[0].complete", t) for t in thumbnails))
    for thumbnail in thumbnails:
        assert thumbnail.size == {"width": 128, "height": 72}
        assert phone.execute_script("return arguments[0].currentSrc", thumbnail).endswith(".webp")
        right = phone.execute_script("return arguments[0].getBoundingClientRect().right", thumbnail)
        assert right <= PHONE_WIDTH - 16 + 0.5  # inside the column (1rem padding)
    assert phone.execute_script("return document.documentElement.scrollWidth") <= PHONE_WIDTH
    full_page_png(phone, screenshot_path("home-390.png", tmp_path))
