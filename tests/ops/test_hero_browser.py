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


@pytest.mark.parametrize(("width", "height", "mobile"), [(390, 844, True), (1280, 900, False)],
                         ids=["phone-390", "desktop-1280"])
def test_the_home_page_draws_thumbnails_in_their_boxes_lazily_below_the_fold(live_server, tmp_path, width, height,
                                                                               mobile):
    """Eight pictured stories on the home page: each thumbnail is drawn 128x72 CSS px from the
    400 px WebP, in a box reserved before it arrives (it does not move when it loads), inside its
    summary and the window; the first three are eager, the others lazy, and they load as the
    reader scrolls to them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    category, author = make_category(name="World"), make_author(name="Bo Ramsey")
    for n in range(8):
        article = make_article(author=author, category=category, ago=timedelta(minutes=10 * (n + 1)),
                               title=f"Story {n + 1}: coastal towns brace for the first winter storm of the season")
        services.article_update(article=article, data={
            "excerpt": "Ferries are cancelled and schools closed as winds of up to 120 km/h are forecast.",
            "hero_image": SimpleUploadedFile(f"s{n}.jpg", demo_data.hero_picture_jpeg(n), content_type="image/jpeg")})
    with support.chromium(width=width, height=height) as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        driver.get(f"{live_server.url}/")
        thumbnails = driver.find_elements(By.CSS_SELECTOR, "article.summary img")
        assert len(thumbnails) == 8
        assert [t.get_attribute("loading") for t in thumbnails] == ["eager"] * 3 + ["lazy"] * 5
        boxes = [driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.x, r.y, r.width, r.height]",
                                       t) for t in thumbnails]
        for thumbnail in thumbnails:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", thumbnail)
            WebDriverWait(driver, 20).until(lambda d, t=thumbnail: d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", t))
        driver.execute_script("window.scrollTo(0, 0)")
        after = [driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.x, r.y, r.width, r.height]",
                                       t) for t in thumbnails]
        assert after == boxes  # nothing moved as the pictures arrived
        for thumbnail, summary in zip(thumbnails, driver.find_elements(By.CSS_SELECTOR, "article.summary"), strict=True):
            assert thumbnail.size == {"width": 128, "height": 72}
            assert driver.execute_script("return arguments[0].currentSrc", thumbnail).rsplit("/", 1)[1].startswith("400w.")
            assert driver.execute_script("return arguments[0].currentSrc", thumbnail).endswith(".webp")
            inside = driver.execute_script(
                "const t = arguments[0].getBoundingClientRect(), s = arguments[1].getBoundingClientRect();"
                "return t.left >= s.left && t.right <= s.right && t.top >= s.top && t.bottom <= s.bottom",
                thumbnail, summary)
            assert inside
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        path = screenshot_path(f"home-thumbnails-{width}.png", tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
