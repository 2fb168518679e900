"""Content-Security-Policy: every page loads from the hub only; answers with a policy of their own keep it.

The browser's side (a README's remote image is never fetched, no page breaks
under the policy) is in ``tests/test_web_browser.py``.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from api.schema import DOCS_CSP
from musehub.csp import INLINE_STYLE_POLICY, POLICY
from tests.test_web_pages import page_urls, signed_in
from tests.webkit import make_readme_repo, make_songs

pytestmark = pytest.mark.django_db


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_the_policy_allows_images_from_the_hub_and_data_only_and_no_inline_code():
    policy = directives(POLICY)
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"]
    assert "http" not in POLICY and "*" not in POLICY, "no other host"
    assert directives(INLINE_STYLE_POLICY) == {**policy, "style-src": ["'self'", "'unsafe-inline'"]}


def test_every_page_carries_the_policy_and_needs_nothing_it_forbids(client):
    songs = make_songs()
    owner = signed_in(songs.owner)
    urls = [*page_urls(songs), f"{songs.url}/blob/main/README.md?plain=1", "/", f"/{songs.owner.username}",
            "/accounts/login", f"{songs.url}/proposals/new", f"{songs.url}/settings", "/accounts/tokens"]  # fmt: skip
    for url in urls:
        reply = (client if url == "/accounts/login" else owner).get(url)
        assert reply.status_code == 200, url
        assert reply["Content-Security-Policy"] == POLICY, url
        html = reply.content.decode()
        assert not re.search(r"<(style|script)\b", html), f"{url}: an inline block the policy refuses"
        assert not re.search(r"""\sstyle\s*=\s*["']""", html), f"{url}: a style attribute the policy refuses"
        assert not re.search(r"""\son[a-z]+\s*=\s*["']""", html), f"{url}: an event handler the policy refuses"
        for src in re.findall(r"""<(?:img|link|script)\b[^>]*?\s(?:src|href)=["']([^"']+)["']""", html):
            assert src.startswith(("/", "data:")), f"{url}: {src} is not on the hub"


def test_a_midi_files_track_colours_need_no_style_attribute(client):
    songs = make_songs()
    html = client.get(f"{songs.url}/blob/main/tune.mid").content.decode()
    assert re.search(r'<svg class="swatch"[^>]*><rect [^>]*fill="#[0-9a-f]{6}"', html), "the swatch is an SVG fill"


def test_a_readme_may_name_a_remote_image_the_policy_then_keeps_the_browser_from_fetching(client):
    songs = make_readme_repo(b"# Pixel\n\n![spy](http://tracker.example/p.png)\n")
    reply = client.get(songs.url)
    assert 'src="http://tracker.example/p.png"' in reply.content.decode(), "the sanitiser keeps http images"
    assert "tracker.example" not in reply["Content-Security-Policy"]
    assert directives(reply["Content-Security-Policy"])["img-src"] == ["'self'", "data:"]


def test_raw_files_and_the_api_docs_keep_their_own_policy(client):
    songs = make_songs()
    raw = client.get(f"/api/v1/repos/{songs.repo.owner}/{songs.repo.slug}/raw/main/README.md")
    assert raw.status_code == 200 and raw["Content-Security-Policy"].startswith("sandbox")
    assert "default-src 'none'" in raw["Content-Security-Policy"]
    docs = client.get("/api/docs/")
    assert docs["Content-Security-Policy"] == DOCS_CSP


def test_the_admin_may_use_inline_styles_but_scripts_only_from_the_hub(client):
    admin = get_user_model().objects.create_superuser("root-csp", password="pw")
    staff = Client()
    staff.force_login(admin)
    for url in ("/admin/login/", "/admin/", "/admin/repos/repo/", "/admin/auth/user/add/"):
        reply = (client if url == "/admin/login/" else staff).get(url)
        assert reply.status_code == 200, url
        assert reply["Content-Security-Policy"] == INLINE_STYLE_POLICY, url
        html = reply.content.decode()
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
        assert all('src="/' in attrs and not body.strip() for attrs, body in scripts), url


def test_json_answers_and_static_files_carry_the_policy_too(client):
    for url in ("/health", "/no/such/route", "/static/web/hub.css"):
        reply = client.get(url)
        assert reply["Content-Security-Policy"] == POLICY, url


def test_debug_error_pages_go_without_a_policy_but_debug_pages_that_work_keep_it(client, settings):
    settings.DEBUG = True
    missing = client.get("/nobody-here-at-all/nothing")
    assert missing.status_code == 404 and "Content-Security-Policy" not in missing
    assert client.get("/accounts/login")["Content-Security-Policy"] == POLICY
