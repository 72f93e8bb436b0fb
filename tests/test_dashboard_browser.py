"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver): signing in
through the emulator's OAuth pages, the repository list, a refused repository, the charts."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bot.emulator import GitHubEmulator
from tests.dashboard_site import (
    ACCURACY,
    LOSS,
    NOT_HERS,
    READ_ONLY,
    SHARED,
    USER,
    Site,
    lay_out_repositories,
    seed_history,
    serve_dashboard,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Where to keep the screenshot the README shows, when asked:
# MLGATE_DASHBOARD_SCREENSHOT=docs/dashboard.png pytest tests/test_dashboard_browser.py
SCREENSHOT_ENV = "MLGATE_DASHBOARD_SCREENSHOT"
WIDTH = 1100


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the module; each test starts without cookies."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        # Never a skip: CI installs them (.ci/run), and a developer is told how.
        pytest.fail(
            f"{', '.join(missing)} missing: `apt-get install chromium chromium-driver` "
            "(Debian's packages; .ci/run installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        # CI runs as root, where Chromium's own sandbox cannot start.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},1000",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    # The explicit driver path keeps Selenium Manager from looking for a driver to download.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def site(
    github_env: dict[str, str],
    emulator: GitHubEmulator,
    redis_conn: redis.Redis,
    browser: WebDriver,
) -> Iterator[Site]:
    lay_out_repositories(emulator)
    seed_history(redis_conn)
    seed_history(redis_conn, NOT_HERS)
    emulator.sign_in(USER)
    with serve_dashboard(github_env, emulator, redis_conn) as served:
        yield served
    try:
        browser.delete_all_cookies()
    except WebDriverException:
        pass  # the page of a stopped server: nothing of it is left to clear


def sign_in_by_clicking(browser: WebDriver, site: Site) -> None:
    browser.get(f"{site.url}/")
    browser.find_element(By.LINK_TEXT, "Sign in with GitHub").click()
    # The browser follows GitHub's (the emulator's) redirects back to the dashboard.
    WebDriverWait(browser, 15).until(lambda b: "signed in as" in b.page_source)


def test_signing_in_follows_githubs_redirects_and_lists_the_shared_repositories(
    browser: WebDriver, site: Site
) -> None:
    sign_in_by_clicking(browser, site)
    assert browser.current_url == f"{site.url}/"
    assert browser.find_element(By.CSS_SELECTOR, "header .who").text == f"signed in as @{USER}"
    links = browser.find_elements(By.CSS_SELECTOR, "table.repositories a")
    assert [a.text for a in links] == [SHARED, READ_ONLY]
    cookie = browser.get_cookie("mlgate_session")
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False)
    # HttpOnly: no script of the page could read it.
    assert browser.execute_script("return document.cookie") == ""

    browser.find_element(By.CSS_SELECTOR, "header button").click()  # Sign out
    WebDriverWait(browser, 10).until(lambda b: "Sign in with GitHub" in b.page_source)
    assert "signed in as" not in browser.page_source


def test_a_repository_the_user_may_not_read_is_refused(browser: WebDriver, site: Site) -> None:
    sign_in_by_clicking(browser, site)
    browser.get(f"{site.url}/repos/{NOT_HERS}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not a repository you can see here"
    assert f"{NOT_HERS} is not a repository that both you (@{USER})" in (
        browser.find_element(By.CSS_SELECTOR, "p.problem").text
    )
    # Its history was recorded, and none of it shows.
    assert browser.find_elements(By.CSS_SELECTOR, "svg") == []


def test_the_repository_page_draws_metric_history_as_svg(
    browser: WebDriver, site: Site, tmp_path: Path
) -> None:
    sign_in_by_clicking(browser, site)
    browser.find_element(By.LINK_TEXT, SHARED).click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url == f"{site.url}/repos/{SHARED}")
    history = browser.find_elements(By.CSS_SELECTOR, "h2#history + p + .charts svg.chart")
    assert [svg.get_attribute("data-metric") for svg in history] == ["accuracy", "loss"]
    for svg, values in zip(history, (ACCURACY, LOSS), strict=True):
        # Laid out by the browser at its drawn size, one polyline vertex and dot per commit.
        assert (svg.size["width"], svg.size["height"]) == (460, 170)
        line = svg.find_element(By.CSS_SELECTOR, "polyline.series")
        assert len((line.get_attribute("points") or "").split()) == len(values)
        assert len(svg.find_elements(By.CSS_SELECTOR, "circle.point")) == len(values)
    live = browser.find_elements(By.CSS_SELECTOR, "h2#monitoring ~ .charts svg.chart")
    assert [svg.get_attribute("data-metric") for svg in live] == ["accuracy"]
    verdicts = browser.find_elements(By.CSS_SELECTOR, "table.evaluations .verdict")
    assert [v.text for v in verdicts] == ["passed", "neutral", "overridden", "failed", "passed"]
    assert "Retrain on new data" in browser.find_element(By.CSS_SELECTOR, "table.retrain").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")) == 3

    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    # The window's size counts its frame: the viewport is that much smaller.
    frame = int(browser.execute_script("return window.outerHeight - window.innerHeight"))
    browser.set_window_size(WIDTH, height + frame)
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, tall = struct.unpack(">II", png[16:24])
    assert width >= WIDTH - 20 and tall >= height
    kept = os.environ.get(SCREENSHOT_ENV)
    if kept:
        shutil.copyfile(shot, kept)
    browser.set_window_size(WIDTH, 1000)
