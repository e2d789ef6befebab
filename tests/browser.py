"""A real headless Chromium for page tests (Debian's `chromium` and `chromium-driver`, driven by Selenium), and
the screenshots the tests take, kept in reports/screenshots/ for people to look at."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = PROJECT_ROOT / "reports" / "screenshots"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _found(names: tuple[str, ...]) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


def browser_or_skip() -> tuple[str, str]:
    """(browser, driver) paths, or skip the test saying what to install."""
    browser, driver = _found(CHROMIUM_NAMES), _found(("chromedriver",))
    if browser is None or driver is None:
        pytest.skip("no Chromium here: `apt-get install -y chromium chromium-driver` (.ci/run installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: `pip install -e '.[dev]'`")
    return browser, driver


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A headless Chromium session; quits when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = browser_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, *texts: str, timeout: float = 30) -> str:
    """The page's visible text once every one of `texts` is in it; fails naming the missing ones."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        body = driver.find_element(By.TAG_NAME, "body").text
        missing = [text for text in texts if text not in body]
        if not missing:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{driver.current_url} never showed {missing}; it showed: {body[:600]!r}")
        time.sleep(0.3)


def screenshot(driver, name: str, full_page: bool = False) -> Path:
    """Save what the browser shows as reports/screenshots/<name>.png (the whole page with `full_page`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(driver.get_window_size()["width"], min(int(height) + 40, 6000))
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def assert_not_blank(path: Path) -> None:
    """A screenshot with more than one colour in it (a blank or failed page is a single colour)."""
    from PIL import Image

    with Image.open(path) as image:
        colours = image.convert("RGB").resize((200, 150)).getcolors(maxcolors=200 * 150)
    assert colours is not None and len(colours) > 20, f"{path.name} looks blank ({len(colours or [])} colours)"
