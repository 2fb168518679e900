"""Issue 25.6: a NUL character in a path segment or a parameter is a 400 JSON error (a 404 page on the web), never a 500.

PostgreSQL refuses NUL in any query (``DataError``); these are the URLs the
security review found, on both faces. Run on both databases.
"""

from __future__ import annotations

import pytest

from tests.webkit import make_songs

pytestmark = pytest.mark.django_db


@pytest.fixture
def songs():
    return make_songs()


API_URLS = [
    "/api/v1/repos/{o}/{r}/commits?ref=ma%00in",
    "/api/v1/repos/{o}/{r}/tree/ma%00in/",
    "/api/v1/repos/{o}/{r}/branches/ma%00in",
    "/api/v1/repos/{o}/{r}/releases/v%001",
    "/api/v1/repos/{o}/{r}/tags?commit=a%00",
    "/api/v1/repos/{o}/{r}/raw/main/REA%00DME.md",
    "/api/v1/repos/{o}%00/{r}",
    "/api/v1/domains/a%00/b",
    "/api/v1/repos?q%00=x",
    "/{o}/{r}/refs%00",
]
WEB_URLS = [
    "/?q=x%00y",
    "/eve%00x",
    "/{o}/{r}/commits?ref=ma%00in",
    "/{o}/{r}/commits/ma%00in",
    "/{o}/{r}/tree/ma%00in/",
    "/{o}/{r}/blob/main/REA%00DME.md",
    "/{o}/{r}/compare/main...fea%00ture",
    "/{o}/{r}/proposals?state=op%00en",
]


@pytest.mark.parametrize("template", API_URLS)
def test_api_and_wire_urls_with_nul_are_json_400(client, songs, template):
    url = template.format(o=songs.repo.owner, r=songs.repo.slug)
    reply = client.get(url)
    assert reply.status_code == 400, url
    assert reply.json()["error"] == "bad_request" and "NUL" in reply.json()["detail"]


@pytest.mark.parametrize("template", WEB_URLS)
def test_web_pages_with_nul_are_404_pages(client, songs, template):
    url = template.format(o=songs.repo.owner, r=songs.repo.slug)
    reply = client.get(url)
    assert reply.status_code == 404, url
    assert reply["Content-Type"].startswith("text/html") and "NUL" in reply.content.decode()


def test_a_form_post_with_nul_in_its_url_is_refused_before_the_view(client, songs):
    reply = client.post(f"/{songs.repo.owner}/{songs.repo.slug}/proposals/1/cl%00ose")
    assert reply.status_code in (400, 404) and reply.status_code != 500


def test_a_session_cookie_holding_nul_is_no_session_not_a_500(client, songs):
    client.cookies["sessionid"] = "\x00abcdefghij"
    for url in ("/", f"/{songs.repo.owner}/{songs.repo.slug}", "/api/v1/repos"):
        assert client.get(url).status_code == 200, url


def test_the_same_urls_without_nul_still_answer(client, songs):
    o, r = songs.repo.owner, songs.repo.slug
    assert client.get(f"/api/v1/repos/{o}/{r}/commits?ref=main").status_code == 200
    assert client.get(f"/{o}/{r}/tree/main/").status_code in (200, 301, 302)
    assert client.get("/?q=x0y").status_code == 200
