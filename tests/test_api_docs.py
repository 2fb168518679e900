"""The OpenAPI schema and the docs page: Bearer auth, groups by purpose, errors documented, nothing from other hosts."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def schema():
    return Client().get("/api/schema/", headers={"Accept": "application/json"}).json()


def operations(schema):
    for path, ops in schema["paths"].items():
        for method, operation in ops.items():
            yield path, method, operation


def test_the_schema_documents_bearer_tokens_and_no_session_cookie(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": schemes["bearerAuth"]["description"]}
    }
    assert "musehub_token create" in schemes["bearerAuth"]["description"]
    for path, method, operation in operations(schema):
        assert {"bearerAuth": []} in operation["security"], (method, path)


def test_every_operation_is_in_one_documented_group(schema):
    names = [tag["name"] for tag in schema["tags"]]
    assert all(tag["description"] for tag in schema["tags"])
    used = set()
    for path, method, operation in operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in names, (method, path, operation["tags"])
        used.add(operation["tags"][0])
    assert used == set(names), "no empty group"
    by_path = {(p, m): o["tags"][0] for p, m, o in operations(schema)}
    assert by_path[("/api/v1/repos/{owner}/{slug}", "patch")] == "Repositories"
    assert by_path[("/api/v1/repos/{owner}/{slug}/proposals/{number}/merge", "post")] == "Merge proposals"
    assert by_path[("/api/v1/repos/{owner}/{slug}/tree/{spec}", "get")] == "History and files"
    assert by_path[("/{owner}/{slug}/refs", "get")] == "Wire: native mpack protocol"
    assert by_path[("/{owner}/{slug}/push", "post")] == "Wire: MWP (muse CLI)"
    assert by_path[("/api/v1/user", "get")] == "Account"


def test_error_replies_are_documented_with_the_one_error_shape(schema):
    assert schema["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        assert "401" in responses and "503" in responses, (method, path)
        if "{owner}" in path:
            assert "404" in responses, (method, path)
        if method != "get":
            assert "403" in responses and "400" in responses, (method, path)
    assert "422" in schema["paths"]["/api/v1/repos/{owner}/{slug}"]["patch"]["responses"], "unknown_branch"
    assert "409" in schema["paths"]["/api/v1/repos/{owner}/{slug}/rename"]["post"]["responses"], "a taken name"
    assert {"409", "413", "422"} <= set(schema["paths"]["/{owner}/{slug}/mpack/push"]["post"]["responses"])
    merge = schema["paths"]["/api/v1/repos/{owner}/{slug}/proposals/{number}/merge"]["post"]["responses"]["409"]
    assert "MergeConflictResponse" in str(merge), "an operation's own error shape is kept"


def test_descriptions_are_written_for_readers_not_taken_from_class_docstrings(schema):
    text = str(schema)
    for docstring in ("Base of the JSON REST API", "Base of the per-repository REST views", "MWP endpoints: the body"):
        assert docstring not in text
    for path, method, operation in operations(schema):
        assert operation.get("summary"), (method, path)
        if path.startswith("/api/v1/"):
            assert len(operation.get("description", "")) > 30, ("a description for readers", method, path)
    assert "/_storage/{token}" not in schema["paths"] and "/api/schema/" not in schema["paths"]


def test_the_mwp_operations_have_request_and_reply_shapes(schema):
    push = schema["paths"]["/{owner}/{slug}/push"]["post"]
    assert "requestBody" in push and "200" in push["responses"]
    assert "MwpPushRequest" in str(push["requestBody"])


def test_the_schema_builds_with_no_warning():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=out)  # raises on any warning
    assert "openapi" in out.getvalue()


def test_the_docs_page_references_only_the_hubs_own_host(settings):
    settings.ALLOWED_HOSTS = ["hub.example", "testserver"]
    reply = Client().get("/api/docs/", HTTP_HOST="hub.example")
    assert reply.status_code == 200
    html = reply.content.decode()
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls, "the page loads its script from somewhere"
    for url in urls:
        assert urlsplit(url).netloc in ("", "hub.example"), url
    assert any("redoc.standalone.js" in url for url in urls)
    policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "http" not in policy, "no other host is allowed"
    script = next(u for u in urls if "redoc.standalone.js" in u)
    assert finders.find(script.removeprefix(settings.STATIC_URL).removeprefix("/static/")), "shipped with the hub"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): run `make browser`",
)
def test_the_docs_render_in_a_browser_without_a_request_to_another_host(live_server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="musehub-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"{live_server.url}/api/docs/")
        WebDriverWait(driver, 30).until(lambda d: "Merge proposals" in d.find_element(By.TAG_NAME, "body").text)
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Repositories" in body and "Wire: MWP (muse CLI)" in body
        time.sleep(1)  # let late images (Redoc's sidebar footer) start loading
        own = urlsplit(live_server.url).netloc
        sent = [
            event["params"]["request"]["url"]
            for event in (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
            if event["method"] == "Network.requestWillBeSent"
        ]
        page = [url for url in sent if not url.startswith("chrome://")]  # the browser's own pages
        assert any(url.endswith("/api/schema/") for url in page), "the log holds the page's requests"
        for url in page:
            parts = urlsplit(url)
            assert parts.scheme in ("blob", "data") or parts.netloc == own, url
        timed = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(urlsplit(url).netloc == own for url in timed), timed
        fonts = driver.execute_script("return [...document.fonts].map(f => f.family)")
        assert not any("Montserrat" in f for f in fonts)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
