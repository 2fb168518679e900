"""Settings that keep secrets: cookies and HSTS from the hub's public URL, a data dir no other user can read.

Each case runs Django in a fresh interpreter configured only by its
environment (``tests/deploykit.py``), as a server would start.
"""

from __future__ import annotations

import json
import stat

import pytest

from tests.deploykit import PRODUCTION_ENV, django_process

SHOW_HTTPS = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'session_secure': s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS, "
    "'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'preload': s.SECURE_HSTS_PRELOAD, "
    "'trusted': s.CSRF_TRUSTED_ORIGINS, 'httponly': s.SESSION_COOKIE_HTTPONLY, "
    "'samesite': [s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SAMESITE]}))"
)
YEAR = 365 * 24 * 3600


def https_settings(tmp_path, **env: str) -> dict:
    result = django_process(tmp_path, SHOW_HTTPS, **{**PRODUCTION_ENV, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- cookies and HTTPS -------------------------------------------------------------------------------


def test_an_https_public_url_makes_cookies_secure_and_sends_hsts(tmp_path):
    shown = https_settings(tmp_path, MUSEHUB_PUBLIC_URL="https://hub.example.com")
    assert shown["session_secure"] is True and shown["csrf_secure"] is True
    assert shown["hsts"] == YEAR and shown["subdomains"] is False and shown["preload"] is False
    assert shown["trusted"] == ["https://hub.example.com"]
    assert shown["httponly"] is True and shown["samesite"] == ["Lax", "Lax"]


def test_without_an_https_public_url_cookies_are_not_secure_and_no_hsts_is_sent(tmp_path):
    for env in ({}, {"MUSEHUB_PUBLIC_URL": "http://hub.example.com:8080"}):
        shown = https_settings(tmp_path, **env)
        assert (shown["session_secure"], shown["csrf_secure"], shown["hsts"], shown["trusted"]) == (False, False, 0, [])
        assert shown["httponly"] is True


def test_secure_cookies_and_hsts_can_be_set_either_way(tmp_path):
    off = https_settings(tmp_path, MUSEHUB_PUBLIC_URL="https://hub.example.com", MUSEHUB_SECURE_COOKIES="0")
    assert (off["session_secure"], off["hsts"]) == (False, 0)
    on = https_settings(tmp_path, MUSEHUB_PUBLIC_URL="http://hub.example.com", MUSEHUB_SECURE_COOKIES="1")
    assert (on["session_secure"], on["csrf_secure"], on["hsts"]) == (True, True, YEAR)
    short = https_settings(tmp_path, MUSEHUB_PUBLIC_URL="https://hub.example.com", MUSEHUB_HSTS_SECONDS="300")
    assert short["hsts"] == 300 and short["session_secure"] is True
    trusted = https_settings(
        tmp_path, MUSEHUB_PUBLIC_URL="https://hub.example.com", MUSEHUB_CSRF_TRUSTED_ORIGINS="https://a.example"
    )
    assert trusted["trusted"] == ["https://a.example"]


def test_a_public_url_without_a_scheme_is_refused(tmp_path):
    result = django_process(tmp_path, **PRODUCTION_ENV, MUSEHUB_PUBLIC_URL="hub.example.com")
    assert result.returncode != 0
    assert "MUSEHUB_PUBLIC_URL is 'hub.example.com'; set it to the hub's address" in result.stderr


# A sign-in through the production app (as the proxy hands it on: HTTPS said by X-Forwarded-Proto). The pages'
# stylesheet comes from the apps' folders rather than a collectstatic manifest, which this test does not build.
SIGN_IN = """
import json
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings
override_settings(
    STORAGES={**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
).enable()
call_command("migrate", verbosity=0)
User.objects.create_user("alice", password="pw")
client = Client(HTTP_HOST="hub.example.com", HTTP_X_FORWARDED_PROTO=__PROTO__)
page = client.get("/accounts/login")
token = page.cookies["csrftoken"].value
done = client.post("/accounts/login", {"username": "alice", "password": "pw", "csrfmiddlewaretoken": token},
                   HTTP_ORIGIN=__ORIGIN__)
def cookie(reply, name):
    morsel = reply.cookies[name]
    return {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"]), "samesite": morsel["samesite"]}
print(json.dumps({"hsts": page.get("Strict-Transport-Security"), "status": done.status_code,
                  "csrf": cookie(page, "csrftoken"), "session": cookie(done, "sessionid")}))
"""


def sign_in(tmp_path, proto: str, **env: str) -> dict:
    origin = f"{proto}://hub.example.com"
    script = SIGN_IN.replace("__PROTO__", repr(proto)).replace("__ORIGIN__", repr(origin))
    (tmp_path / "static").mkdir(exist_ok=True)
    result = django_process(
        tmp_path, script, **{**PRODUCTION_ENV, "MUSEHUB_STATIC_ROOT": str(tmp_path / "static"), **env}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_signing_in_over_https_sets_secure_cookies_and_hsts(tmp_path):
    shown = sign_in(tmp_path, "https", MUSEHUB_PUBLIC_URL="https://hub.example.com")
    assert shown["status"] == 302, "signed in"
    assert shown["hsts"] == f"max-age={YEAR}", "a year, this host only, no preload"
    assert shown["session"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert shown["csrf"]["secure"] is True and shown["csrf"]["samesite"] == "Lax"


def test_plain_http_without_a_public_url_keeps_working_without_secure_cookies(tmp_path):
    shown = sign_in(tmp_path, "http")
    assert shown["status"] == 302 and shown["hsts"] is None
    assert shown["session"] == {"secure": False, "httponly": True, "samesite": "Lax"}


# --- the data dir ----------------------------------------------------------------------------------------

WRITE_SQLITE = (
    "from django.db import connection; c = connection.cursor(); "
    "c.execute('CREATE TABLE IF NOT EXISTS t (x)'); c.execute('INSERT INTO t VALUES (1)'); connection.close()"
)


def modes(directory) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in [directory, *directory.iterdir()]}


def test_the_data_dir_database_and_secret_key_are_private_even_with_a_permissive_umask(tmp_path):
    result = django_process(tmp_path, WRITE_SQLITE, umask=0o022)
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    assert modes(data) == {"data": 0o700, "musehub.sqlite3": 0o600, "secret_key": 0o600}


def test_an_existing_world_readable_data_dir_and_database_are_made_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "musehub.sqlite3").touch()
    (data / "musehub.sqlite3").chmod(0o644)
    result = django_process(tmp_path, WRITE_SQLITE, umask=0o022)
    assert result.returncode == 0, result.stderr
    assert modes(data)["data"] == 0o700 and modes(data)["musehub.sqlite3"] == 0o600


@pytest.mark.parametrize("journal_mode", ["DELETE", "WAL"])
def test_sqlites_journal_files_take_the_databases_mode(tmp_path, journal_mode):
    script = (
        "from django.db import connection; import os, stat, json; c = connection.cursor(); "
        f"c.execute('PRAGMA journal_mode={journal_mode}'); c.execute('BEGIN'); c.execute('CREATE TABLE t (x)'); "
        "c.execute('INSERT INTO t VALUES (1)'); d = os.environ['MUSEHUB_DATA_DIR']; "
        "print(json.dumps({n: stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode) for n in os.listdir(d)})); "
        "c.execute('COMMIT')"
    )
    result = django_process(tmp_path, script, umask=0o022)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    suffix = "-wal" if journal_mode == "WAL" else "-journal"
    assert shown.get(f"musehub.sqlite3{suffix}") == 0o600, shown
    assert all(mode & 0o077 == 0 for mode in shown.values()), shown
