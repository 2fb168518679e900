"""Failed sign-ins and failed token authentications are throttled, with counts every app server shares.

Through Django's test client against the real database (SQLite or PostgreSQL): the web
and admin sign-in forms (django-axes' rows, ``hubhttp.throttle.SignInThrottle``), Bearer
tokens on the REST API and the wire endpoints (``hubhttp.models.TokenFailures``), the
client address behind a proxy, and the cool-off (stored timestamps moved back, no sleeping).
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote

import pytest
from axes.models import AccessAttempt
from django.db import connection
from django.db.models import F
from django.test import Client, RequestFactory
from django.utils import timezone

from hubhttp.models import TokenFailures
from hubhttp.throttle import client_address
from tests.deploykit import django_process
from tests.factories import make_repo, make_user, uid
from tests.httpkit import token_for

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login"
ADMIN_LOGIN = "/admin/login/"
COOL_OFF = 15 * 60  # the defaults (settings.py): 10 per account, 50 per address, 15 minutes
TOKEN_LIMIT, TOKEN_WINDOW = 100, 5 * 60


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_at(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def sign_in(client: Client, username: str, password: str, url: str = LOGIN):
    return client.post(url, {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def age_sign_in_failures(seconds: int) -> None:
    """Move every recorded failed sign-in *seconds* into the past (what waiting would do)."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - dt.timedelta(seconds=seconds))


def addresses_recorded() -> set[str]:
    return set(AccessAttempt.objects.values_list("ip_address", flat=True))


def assert_locked_page(reply, *, at_most: int = COOL_OFF) -> int:
    assert reply.status_code == 429, reply.status_code
    assert reply["Content-Type"].startswith("text/html")
    page = reply.content.decode()
    assert "Too many attempts" in page and "Too many failed sign-ins" in page
    wait = int(reply["Retry-After"])
    assert 0 < wait <= at_most, wait
    return wait


# --- sign-in: per account ----------------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_account_and_the_right_one_is_refused():
    alice = make_user(f"alice-{uid()}", password="right")
    client = client_at("203.0.113.7")
    for _ in range(9):
        reply = sign_in(client, alice.username, "wrong")
        assert reply.status_code == 200 and "Sign in" in reply.content.decode(), "still the form, with its error"
    wait = assert_locked_page(sign_in(client, alice.username, "wrong"))
    assert wait > COOL_OFF - 60, "locked for the whole cool-off from the tenth failure"
    assert_locked_page(sign_in(client, alice.username, "right"))
    assert not signed_in(client)
    # 290 more, then the right password: still refused, and nothing more is recorded while locked.
    for _ in range(290):
        assert sign_in(client, alice.username, "wrong").status_code == 429
    assert_locked_page(sign_in(client, alice.username, "right"))
    assert not signed_in(client)
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == 10


def test_a_locked_account_is_locked_from_every_address_and_other_accounts_are_not():
    alice, bob = make_user(f"alice-{uid()}", password="right"), make_user(f"bob-{uid()}", password="bobs")
    attacker = client_at("198.51.100.1")
    for _ in range(10):
        sign_in(attacker, alice.username, "guess")
    assert_locked_page(sign_in(client_at("192.0.2.44"), alice.username, "right"))
    elsewhere = client_at("192.0.2.44")
    assert sign_in(elsewhere, bob.username, "bobs").status_code == 302 and signed_in(elsewhere)
    same_address = client_at("198.51.100.1")  # 10 failures there: under the address limit (50)
    assert sign_in(same_address, bob.username, "bobs").status_code == 302 and signed_in(same_address)


# --- sign-in: per address ----------------------------------------------------------------------------


def test_fifty_failures_from_one_address_lock_it_whatever_the_usernames():
    carol = make_user(f"carol-{uid()}", password="right")
    client = client_at("203.0.113.50")
    for n in range(49):
        assert sign_in(client, f"nobody-{n}-{uid()}", "guess").status_code == 200
    assert_locked_page(sign_in(client, f"nobody-last-{uid()}", "guess"))
    assert_locked_page(sign_in(client, carol.username, "right")), "the address is locked for every account"
    assert not signed_in(client)
    other = client_at("203.0.113.51")
    assert sign_in(other, carol.username, "right").status_code == 302 and signed_in(other)


def test_a_forged_x_forwarded_for_changes_nothing_without_a_trusted_proxy():
    client = Client(REMOTE_ADDR="203.0.113.60")
    for n in range(50):
        client.post(LOGIN, {"username": f"x-{n}", "password": "p"}, headers={"X-Forwarded-For": f"10.0.{n}.1"})
    assert addresses_recorded() == {"203.0.113.60"}
    assert_locked_page(client.post(LOGIN, {"username": "y", "password": "p"}, headers={"X-Forwarded-For": "10.9.9.9"}))


# --- the admin's sign-in -------------------------------------------------------------------------------


def test_the_admin_sign_in_is_throttled_too():
    staff = make_user(f"staff-{uid()}", password="right", is_staff=True, is_superuser=True)
    client = client_at("203.0.113.9")
    for _ in range(9):
        assert sign_in(client, staff.username, "wrong", ADMIN_LOGIN).status_code == 200
    assert_locked_page(sign_in(client, staff.username, "wrong", ADMIN_LOGIN))
    assert_locked_page(sign_in(client, staff.username, "right", ADMIN_LOGIN))
    assert not signed_in(client)
    assert_locked_page(sign_in(client, staff.username, "right")), "the same lock on the web form"


# --- cool-off and success ------------------------------------------------------------------------------


def test_the_lock_ends_when_the_cool_off_has_passed():
    dave = make_user(f"dave-{uid()}", password="right")
    client = client_at("203.0.113.11")
    for _ in range(10):
        sign_in(client, dave.username, "wrong")
    age_sign_in_failures(10 * 60)
    wait = assert_locked_page(sign_in(client, dave.username, "right"), at_most=5 * 60)
    assert wait > 4 * 60, "Retry-After counts down: five minutes are left"
    age_sign_in_failures(5 * 60 + 1)
    assert sign_in(client, dave.username, "right").status_code == 302 and signed_in(client)


def test_the_lock_ends_with_the_failure_that_completes_the_count():
    erin = make_user(f"erin-{uid()}", password="right")
    early, late = client_at("198.51.100.20"), client_at("198.51.100.21")
    for _ in range(4):
        sign_in(early, erin.username, "wrong")
    age_sign_in_failures(10 * 60)
    for _ in range(6):
        sign_in(late, erin.username, "wrong")
    wait = assert_locked_page(sign_in(late, erin.username, "right"), at_most=5 * 60)
    assert wait > 4 * 60, "the four early failures leave the count in five minutes, the lock with them"
    AccessAttempt.objects.filter(ip_address="198.51.100.20").update(
        attempt_time=timezone.now() - dt.timedelta(seconds=COOL_OFF + 1)
    )
    assert sign_in(late, erin.username, "right").status_code == 302


def test_a_successful_sign_in_forgets_its_own_typos_but_not_failures_from_elsewhere():
    frank = make_user(f"frank-{uid()}", password="right")
    home, attacker = client_at("192.0.2.10"), client_at("198.51.100.66")
    for _ in range(9):
        sign_in(home, frank.username, "typo")
    assert sign_in(home, frank.username, "right").status_code == 302, "nine failures do not lock"
    assert not AccessAttempt.objects.filter(ip_address="192.0.2.10").exists(), "the owner's typos are forgotten"
    for _ in range(5):
        sign_in(attacker, frank.username, "guess")
    home = client_at("192.0.2.10")
    for _ in range(4):
        assert sign_in(home, frank.username, "typo").status_code == 200
    assert_locked_page(sign_in(home, frank.username, "typo")), "5 from elsewhere + 5 here reach the limit"


def test_limits_are_settings_and_zero_turns_one_off(settings):
    settings.MUSEHUB_SIGNIN_ACCOUNT_LIMIT = 0
    settings.MUSEHUB_SIGNIN_ADDRESS_LIMIT = 3
    grace = make_user(f"grace-{uid()}", password="right")
    client = client_at("203.0.113.30")
    assert sign_in(client, grace.username, "a").status_code == 200
    assert sign_in(client, grace.username, "b").status_code == 200
    assert_locked_page(sign_in(client, grace.username, "c"))
    assert sign_in(client_at("203.0.113.31"), grace.username, "right").status_code == 302, "no account limit"


# --- Bearer tokens ---------------------------------------------------------------------------------------


def bearer(client: Client, url: str, token: str):
    return client.get(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})


def assert_throttled_json(reply, *, at_most: int = TOKEN_WINDOW) -> int:
    assert reply.status_code == 429, (reply.status_code, reply.content[:300])
    assert reply["Content-Type"].startswith("application/json")
    body = json.loads(reply.content)
    assert body["error"] == "throttled" and "Too many failed token authentications" in body["detail"]
    wait = int(reply["Retry-After"])
    assert 0 < wait <= at_most and body["retry_after"] == wait
    return wait


def test_failed_tokens_from_one_address_answer_429_json_on_the_api_and_the_wire():
    owner = make_user(f"owner-{uid()}")
    repo = make_repo(owner, visibility="private")
    good = token_for(owner)
    client = client_at("203.0.113.70")
    for n in range(TOKEN_LIMIT - 1):
        reply = bearer(client, "/api/v1/user", f"mh_wrong{n}")
        assert reply.status_code == 401 and json.loads(reply.content)["error"] == "unauthenticated"
    assert_throttled_json(bearer(client, "/api/v1/user", "mh_wrong-last"))
    assert_throttled_json(bearer(client, "/api/v1/user", good)), "a right token too: guessing gains nothing"
    assert_throttled_json(bearer(client, f"/{owner.username}/{repo.slug}/refs", good)), "the wire endpoints"
    assert client.get(f"/{owner.username}").status_code == 200, "requests without a token are not refused"
    other = client_at("203.0.113.71")
    assert bearer(other, "/api/v1/user", good).status_code == 200
    assert bearer(other, f"/{owner.username}/{repo.slug}/refs", good).status_code == 200


def test_token_failures_are_counted_in_the_database_that_every_app_server_shares():
    owner = make_user(f"owner-{uid()}")
    good = token_for(owner)
    for n in range(30):  # a fresh client each time: nothing is kept in a client or a process
        assert bearer(client_at("198.51.100.80"), "/api/v1/user", f"mh_bad{n}").status_code == 401
    row = TokenFailures.objects.get(address="198.51.100.80")
    assert row.failures == 30
    # Another app server's failures are rows in the same table: this one refuses at once.
    TokenFailures.objects.filter(pk=row.pk).update(failures=TOKEN_LIMIT)
    assert_throttled_json(bearer(Client(REMOTE_ADDR="198.51.100.80"), "/api/v1/user", good))


def database_url() -> str:
    """Return the URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_token_failures_of_another_process_count_here(tmp_path):
    """A separate interpreter (another app server) fails tokens against the same PostgreSQL database."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's test database is in memory: another process cannot open it")
    good = token_for(make_user(f"owner-{uid()}"))
    script = (
        "from django.test import Client; c = Client(REMOTE_ADDR='198.51.100.90'); "
        "print([c.get('/api/v1/user', headers={'Authorization': 'Bearer mh_x%d' % n}).status_code for n in range(60)])"
    )
    result = django_process(tmp_path, script, DATABASE_URL=database_url())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "429" not in result.stdout and result.stdout.count("401") == 60
    client = client_at("198.51.100.90")
    for n in range(TOKEN_LIMIT - 60 - 1):
        assert bearer(client, "/api/v1/user", f"mh_y{n}").status_code == 401
    assert_throttled_json(bearer(client, "/api/v1/user", "mh_last"))
    assert_throttled_json(bearer(client, "/api/v1/user", good))


def test_the_token_limit_ends_with_its_window():
    owner = make_user(f"owner-{uid()}")
    good = token_for(owner)
    client = client_at("203.0.113.90")
    for n in range(TOKEN_LIMIT):
        bearer(client, "/api/v1/user", f"mh_wrong{n}")
    wait = assert_throttled_json(bearer(client, "/api/v1/user", good))
    assert wait > TOKEN_WINDOW - 60
    TokenFailures.objects.update(window_start=timezone.now() - dt.timedelta(seconds=TOKEN_WINDOW + 1))
    assert bearer(client, "/api/v1/user", good).status_code == 200
    assert bearer(client, "/api/v1/user", "mh_wrong-again").status_code == 401
    assert TokenFailures.objects.get(address="203.0.113.90").failures == 1, "a new window"


def test_malformed_authorization_headers_count_as_failures(settings):
    settings.MUSEHUB_TOKEN_FAILURE_LIMIT = 3
    client = client_at("203.0.113.95")
    assert client.get("/api/v1/user", headers={"Authorization": "Bearer a b"}).status_code == 401
    assert client.get("/api/v1/user", headers={"Authorization": "Bearer"}).status_code == 401
    assert_throttled_json(client.get("/api/v1/user", headers={"Authorization": "Bearer c d e"}))


def test_a_token_limit_of_zero_turns_the_throttle_off(settings):
    settings.MUSEHUB_TOKEN_FAILURE_LIMIT = 0
    client = client_at("203.0.113.96")
    for n in range(TOKEN_LIMIT + 5):
        assert bearer(client, "/api/v1/user", f"mh_{n}").status_code == 401
    assert not TokenFailures.objects.exists()


# --- the client address --------------------------------------------------------------------------------


def Req(remote: str, forwarded: str | None = None):
    """A request from *remote*, with *forwarded* as its X-Forwarded-For header."""
    return RequestFactory().get("/", REMOTE_ADDR=remote, headers={"X-Forwarded-For": forwarded} if forwarded else {})


def test_the_client_address_trusts_x_forwarded_for_only_as_far_as_the_proxies_configured(settings):
    assert client_address(Req("10.0.0.5", "6.6.6.6")) == "10.0.0.5", "no trusted proxy: the header is ignored"
    settings.MUSEHUB_TRUSTED_PROXIES = 1
    assert client_address(Req("10.0.0.5", "203.0.113.1")) == "203.0.113.1", "nginx's $proxy_add_x_forwarded_for"
    assert client_address(Req("10.0.0.5", "6.6.6.6, 203.0.113.1")) == "203.0.113.1", "a forged left part is ignored"
    assert client_address(Req("10.0.0.5")) == "10.0.0.5", "not through the proxy (its own health check)"
    settings.MUSEHUB_TRUSTED_PROXIES = 2
    assert client_address(Req("10.0.0.5", "6.6.6.6, 198.51.100.2, 10.0.0.9")) == "198.51.100.2"
    assert client_address(Req("10.0.0.5", "198.51.100.2")) == "10.0.0.5", "fewer hops than proxies: the peer"
    settings.MUSEHUB_TRUSTED_PROXIES = 0
    assert (
        client_address(Req("2001:db8:1:2:aaaa::1")) == client_address(Req("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::"
    )
    assert client_address(Req("2001:db8:1:3::1")) == "2001:db8:1:3::", "another /64"
    assert client_address(Req("::ffff:192.0.2.1")) == "192.0.2.1"
    assert client_address(Req("fe80::1%eth0")) == "fe80::", "a zone is dropped, as /metrics drops it"
    assert client_address(Req("")) is None and client_address(Req("not-an-address")) is None


def test_behind_the_proxy_each_client_is_counted_under_its_own_address(settings):
    settings.MUSEHUB_TRUSTED_PROXIES = 1
    henry = make_user(f"henry-{uid()}", password="right")
    proxy = "10.0.0.2"
    for _ in range(10):
        Client(REMOTE_ADDR=proxy).post(
            LOGIN, {"username": f"x-{uid()}", "password": "p"}, headers={"X-Forwarded-For": "198.51.100.5"}
        )
    assert addresses_recorded() == {"198.51.100.5"}
    client = Client(REMOTE_ADDR=proxy, headers={"X-Forwarded-For": "192.0.2.200"})
    assert sign_in(client, henry.username, "right").status_code == 302


def test_the_admin_lists_refused_addresses_and_deleting_one_lifts_its_limit():
    owner = make_user(f"owner-{uid()}")
    good = token_for(owner)
    blocked = client_at("203.0.113.120")
    for n in range(TOKEN_LIMIT):
        bearer(blocked, "/api/v1/user", f"mh_{n}")
    assert_throttled_json(bearer(blocked, "/api/v1/user", good))
    staff = Client()
    staff.force_login(make_user(f"admin-{uid()}", is_staff=True, is_superuser=True))
    listing = staff.get("/admin/hubhttp/tokenfailures/")
    assert listing.status_code == 200 and "203.0.113.120" in listing.content.decode()
    row = TokenFailures.objects.get(address="203.0.113.120")
    staff.post(f"/admin/hubhttp/tokenfailures/{row.pk}/delete/", {"post": "yes"})
    assert not TokenFailures.objects.filter(pk=row.pk).exists()
    assert bearer(blocked, "/api/v1/user", good).status_code == 200
