"""`make run`: the embedded default serves with DEBUG off, its pages' static files included; a stranger sees no debug page.

Django's debug page shows the settings and the whole environment (database
password included) to whoever causes a 500 or sends a strange Host. ``make
run`` no longer turns DEBUG on: WhiteNoise serves the static files straight
from the apps' folders instead (no collectstatic), and ``MUSEHUB_DEBUG=1 make
run`` is the developer's switch. The server here is started as ``make run``
starts it, with nothing configured but a data dir.
"""

from __future__ import annotations

import re
import sys

import pytest
import requests

from tests.conftest import _free_port
from tests.deploykit import REPO, hub_environment, serving


def make_recipe(target: str) -> str:
    return (REPO / "Makefile").read_text().split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]


def test_make_run_leaves_debug_off_unless_asked():
    run = make_recipe("run")
    assert "manage.py runserver" in run
    assert "MUSEHUB_DEBUG" not in run, "DEBUG comes only from the developer's own MUSEHUB_DEBUG=1"


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("dev-server")
    port = _free_port()
    env = hub_environment(tmp_path, PYTHONUNBUFFERED="1", DJANGO_DB_SECRET="db-password-from-the-environment")
    with serving(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], f"http://127.0.0.1:{port}", env,
        tmp_path / "runserver.log",
    ) as server:  # fmt: skip
        yield server


def stylesheets_and_scripts(html: str) -> list[str]:
    return re.findall(r"""<(?:link[^>]*rel="stylesheet"[^>]*href|script[^>]*src)="(/static/[^"]+)\"""", html)


def test_pages_and_their_static_files_load_without_debug(dev_server):
    for page, wanted in (
        ("/accounts/login", "/static/web/hub.css"),
        ("/admin/login/", "/static/admin/css/base.css"),
        ("/api/docs/", "redoc.standalone.js"),
    ):
        reply = requests.get(dev_server.url + page, timeout=30)
        assert reply.status_code == 200, page
        assert reply.headers["Content-Security-Policy"], page
        assets = stylesheets_and_scripts(reply.text)
        assert any(wanted in asset for asset in assets), (page, assets)
        for asset in assets:
            served = requests.get(dev_server.url + asset, timeout=30)
            assert served.status_code == 200, asset
            assert served.headers["Content-Type"].split(";")[0] in (
                "text/css",
                "text/javascript",
                "application/javascript",
            )
    css = requests.get(f"{dev_server.url}/static/web/hub.css", timeout=30).text
    assert (REPO / "web/static/web/hub.css").read_text() == css, "straight from the app's folder"


def test_a_strange_host_is_a_plain_400_with_nothing_about_the_server(dev_server):
    reply = requests.get(f"{dev_server.url}/accounts/login", headers={"Host": "evil.example"}, timeout=30)
    assert reply.status_code == 400
    body = reply.text
    for secret in ("DisallowedHost", "ALLOWED_HOSTS", "Traceback", "SECRET", "DJANGO_DB_SECRET", "db-password",
                   "DATABASES", str(REPO), "MUSEHUB_DATA_DIR"):  # fmt: skip
        assert secret not in body, secret
    assert len(body) < 200, body


def test_an_unknown_url_is_the_json_404_not_a_debug_page(dev_server):
    reply = requests.get(f"{dev_server.url}/no/such/route/here", timeout=30)
    assert reply.status_code == 404 and reply.json()["error"] == "not_found"
