"""An uploaded hero image in a real browser (issue 32): Debian's headless Chromium at 390 px (a
phone) and 1280 px (a desktop) picks the rendition its `srcset`/`sizes` call for, WebP, and the
box reserved by width/height does not move when the picture arrives. Screenshots go to
docs/screenshots/article-hero-{390,1280}.png with UPDATE_SCREENSHOTS=1 (else the tmp dir); the
ones in docs/ were taken under `make up` by `python -m bench.images --screenshots docs/screenshots`."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from articles import demo_data, services
from tests import support
from tests.factories import make_article, make_author, make_category
from tests.ops.test_pages_browser import screenshot_path

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def illustrated(live_server):
    article = make_article(author=make_author(name="Ada Lovelace"), category=make_category(name="Science"),
                           title="A comet brighter than Venus will cross the evening sky this week",
                           ago=timedelta(minutes=40))
    picture = io.BytesIO(demo_data.hero_picture_jpeg(3))
    return services.article_update(article=article, data={
        "excerpt": "Astronomers say the comet will be visible to the naked eye from Tuesday.",
        "body": "The comet was first spotted in March by an amateur astronomer.\n\nIt should be easiest to see just after sunset.",
        "hero_image": SimpleUploadedFile("comet.jpg", picture.getvalue(), content_type="image/jpeg")})


@pytest.mark.parametrize(("width", "height", "mobile", "expected"), [(390, 844, True, "400w"), (1280, 900, False, "800w")],
                         ids=["phone-390", "desktop-1280"])
def test_the_browser_picks_the_rendition_for_its_width(live_server, illustrated, tmp_path, width, height, mobile,
                                                       expected):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with support.chromium(width=width, height=height) as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        driver.get(f"{live_server.url}/articles/{illustrated.slug}/")
        hero = driver.find_element(By.CSS_SELECTOR, "figure.hero img")
        box_before = hero.size  # laid out from width/height before any byte of the image
        WebDriverWait(driver, 20).until(lambda d: d.execute_script("return arguments[0].complete", hero))
        chosen = driver.execute_script("return arguments[0].currentSrc", hero)
        assert chosen.endswith(".webp") and f"/{expected}." in chosen, chosen
        # Decoded at the slot's density: a w-descriptor image reports the slot's CSS width.
        assert driver.execute_script("return arguments[0].naturalWidth", hero) > 0
        assert hero.size == box_before  # no layout shift
        column = width if mobile else 704  # 44rem on a desktop, the full width on a phone
        assert hero.size["width"] == column and abs(hero.size["height"] - column * 9 / 16) <= 1
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        path = screenshot_path(f"article-hero-{width}.png", tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
