"""The web pages in a real browser: Debian's chromium driven by Selenium against a live hub.

Skipped, saying why, only when /usr/bin/chromium or /usr/bin/chromedriver is
missing (``make browser`` installs them; ``make test`` runs it).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from repos.models import Branch, Proposal
from tests.webkit import make_songs

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): run `make browser`",
    ),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="musehub-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _arrives(browser, at) -> None:
    """Wait (up to 15 s) until the browser's URL satisfies *at*: a click's navigation finishes on its own time."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15).until(lambda driver: at(driver.current_url))
    assert at(browser.current_url), browser.current_url


def test_sign_in_browse_open_a_proposal_merge_it_and_see_the_branch_move(live_server, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    songs = make_songs()
    base = live_server.url

    browser.get(f"{base}/accounts/login?next={songs.url}")
    browser.find_element(By.NAME, "username").send_keys(songs.owner.username)
    browser.find_element(By.NAME, "password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "form.stacked button[type=submit]").click()
    _arrives(browser, lambda url: url == f"{base}{songs.url}")
    assert songs.owner.username in browser.find_element(By.CSS_SELECTOR, ".account").text
    # The stylesheet is served by the hub itself.
    assert browser.execute_script("return getComputedStyle(document.querySelector('.top')).display") == "flex"
    assert browser.find_element(By.CSS_SELECTOR, ".readme h1").text == "Songs"

    browser.find_element(By.LINK_TEXT, "src/").click()
    _arrives(browser, lambda url: url.endswith(f"{songs.url}/tree/main/src"))
    browser.find_element(By.LINK_TEXT, "play.py").click()
    _arrives(browser, lambda url: url.endswith(f"{songs.url}/blob/main/src/play.py"))
    assert "return" in browser.find_element(By.ID, "L2").text

    browser.get(f"{base}{songs.url}/blob/main/tune.mid")
    assert browser.find_element(By.CSS_SELECTOR, ".roll svg").get_attribute("aria-label") == "Piano roll of 3 notes"

    browser.get(f"{base}{songs.url}/branches")
    browser.find_element(By.LINK_TEXT, "Propose").click()
    browser.find_element(By.NAME, "title").send_keys("Square brackets")
    browser.find_element(By.NAME, "body").send_keys("Play notes in *brackets*.")
    assert Select(browser.find_element(By.NAME, "from_branch")).first_selected_option.text == "feature"
    browser.find_element(By.CSS_SELECTOR, "form.stacked button[type=submit]").click()
    _arrives(browser, lambda url: url.endswith(f"{songs.url}/proposals/1"))
    assert browser.find_element(By.CSS_SELECTOR, ".proposal .markdown em").text == "brackets"

    Select(browser.find_element(By.NAME, "strategy")).select_by_value("merge")
    browser.find_element(By.CSS_SELECTOR, ".merge-box button").click()
    # The old page's elements go stale while the new one loads: keep asking until the merged page is there.
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "Merged" in d.find_element(By.CSS_SELECTOR, ".state").text
    )
    proposal = Proposal.objects.get(repo=songs.repo, number=1)
    head = Branch.objects.get(repo=songs.repo, name="main").head_commit_id
    assert proposal.state == "merged" and head == proposal.merge_commit_id != songs.main["commit_id"]

    browser.find_element(By.LINK_TEXT, "Code").click()
    latest = browser.find_element(By.CSS_SELECTOR, ".latest").text
    assert "Merge proposal #1: Square brackets" in latest and head.removeprefix("sha256:")[:10] in latest
    browser.get(f"{base}{songs.url}/blob/main/new.txt")
    assert browser.find_element(By.ID, "L1").text.endswith("new")
