"""The web pages in a real browser: Debian's chromium driven by Selenium against a live hub.

Skipped, saying why, only when /usr/bin/chromium or /usr/bin/chromedriver is
missing (``make browser`` installs them; ``make test`` runs it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model

from musehub_core.formatting import short_id
from repos.models import Branch, Proposal
from tests.webkit import make_readme_repo, make_songs

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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console: CSP violations land there
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
    assert "Merge proposal #1: Square brackets" in latest and short_id(head) in latest
    browser.get(f"{base}{songs.url}/blob/main/new.txt")
    assert browser.find_element(By.ID, "L1").text.endswith("new")


@pytest.fixture
def tracker():
    """Another host (127.0.0.1 on another port) that records every request a browser sends it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.end_headers()
            self.wfile.write(
                bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
            )

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def csp_violations(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]


def test_a_readmes_remote_image_is_never_fetched_and_the_policy_breaks_no_page(live_server, browser, tracker):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    remote, hits = tracker
    readme = (
        f'# Pixel\n\n![spy]({remote}/markdown.gif)\n\n<img src="{remote}/html.gif" alt="html">\n\n![cover](cover.png)\n'
    )
    repo = make_readme_repo(readme.encode())
    base = live_server.url

    browser.get(f"{base}{repo.url}")
    cover = browser.find_element(By.CSS_SELECTOR, ".readme img[alt=cover]")
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return arguments[0].complete", cover))
    assert browser.execute_script("return arguments[0].naturalWidth", cover) == 1, "the hub's own image loads"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".readme img")) == 3, "the remote images are on the page"
    time.sleep(0.5)
    assert hits == [], "the browser asked the other host for nothing"
    refused = csp_violations(browser)
    assert any(f"{remote}/markdown.gif" in m for m in refused) and any(f"{remote}/html.gif" in m for m in refused), (
        "the policy is what kept them from loading"
    )

    # The hub's pages, the admin and the API docs work under their policies: no violation in the console.
    songs = make_songs()
    get_user_model().objects.create_superuser("root-browser", password="pw")
    for url in (songs.url, f"{songs.url}/blob/main/src/play.py", f"{songs.url}/blob/main/tune.mid",
                f"{songs.url}/blob/main/README.md", f"{songs.url}/blob/main/cover.png", f"{songs.url}/commits/main",
                f"{songs.url}/compare/main...feature", "/accounts/login", "/admin/login/"):  # fmt: skip
        browser.get(f"{base}{url}")
        assert not csp_violations(browser), url
        if url.endswith("tune.mid"):
            swatch = browser.find_element(By.CSS_SELECTOR, ".tracks .swatch rect")
            assert browser.execute_script("return getComputedStyle(arguments[0]).fill", swatch) == "rgb(47, 111, 223)"
    browser.find_element(By.NAME, "username").send_keys("root-browser")
    browser.find_element(By.NAME, "password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").endswith("/admin"))
    for url in ("/admin/repos/repo/", f"/admin/repos/repo/{songs.repo.pk}/change/", "/admin/auth/user/add/"):
        browser.get(f"{base}{url}")
        assert browser.execute_script("return document.readyState") == "complete"
        assert not csp_violations(browser), url
        header = browser.find_element(By.ID, "header")
        assert browser.execute_script("return getComputedStyle(arguments[0]).display", header) == "flex", "admin CSS"
    assert hits == []
