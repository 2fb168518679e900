"""Throttling of failed sign-ins and failed token authentications, counted in the database (docs/security.md).

Every app server reads and writes the same counts, so a limit holds however many
servers the proxy spreads an attacker over; nothing needs a shared cache.

* **Sign-ins** (the web and admin forms, anything calling ``django.contrib.auth.authenticate``
  with a request): django-axes records each failure (``axes_accessattempt``) and
  :class:`SignInThrottleBackend` refuses a locked account or address before any password
  is hashed. :class:`SignInThrottle` holds the account to ``MUSEHUB_SIGNIN_ACCOUNT_LIMIT``
  and the address to ``MUSEHUB_SIGNIN_ADDRESS_LIMIT`` failures within
  ``MUSEHUB_SIGNIN_COOLOFF_SECONDS``; the failure that reaches a limit locks, and the lock
  ends when enough failures have aged out of that time (:meth:`SignInThrottle.locked_until`).
* **Bearer tokens**: :func:`record_token_failure` counts failures per address in
  :class:`hubhttp.models.TokenFailures`; at ``MUSEHUB_TOKEN_FAILURE_LIMIT`` failures every
  token request from that address is refused until ``MUSEHUB_TOKEN_FAILURE_WINDOW_SECONDS``
  after the window's first failure (:func:`token_retry_after`).

Both answer 429 with ``Retry-After`` (the error is ``musehub_core.errors.Throttled``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from hubhttp.models import TokenFailures

UNKNOWN = "unknown"  # the key of requests whose address cannot be read (they share one count)


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return the address *text* names (an IPv6 zone dropped, an IPv4-mapped IPv6 address as IPv4), or None."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:  # a Unix socket (gunicorn bound to unix:…) has no address
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def client_address(request) -> str | None:
    """Return the address the throttles count *request* under, or None when it cannot be read.

    It is the connection's address (``REMOTE_ADDR``) unless ``MUSEHUB_TRUSTED_PROXIES`` says N
    reverse proxies stand in front of the hub: then it is the N-th address from the right of
    ``X-Forwarded-For``, the one the outermost trusted proxy saw (each proxy appends the address it
    was reached from, so whatever a client writes there itself stays to the left). An IPv6 address
    counts as its /64, the block one subscriber gets, so stepping through it gains nothing.
    """
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.MUSEHUB_TRUSTED_PROXIES
    if proxies:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            address = hops[-proxies]
    ip = parse_ip(address)
    if ip is None:
        return None
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _seconds_until(moment: dt.datetime, now: dt.datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


# --- Bearer tokens ------------------------------------------------------------------------------------


def _token_window() -> dt.timedelta:
    return dt.timedelta(seconds=settings.MUSEHUB_TOKEN_FAILURE_WINDOW_SECONDS)


def token_retry_after(address: str | None, *, now: dt.datetime | None = None) -> int:
    """Return the seconds until *address* may authenticate with a token again (0: it may now)."""
    limit = settings.MUSEHUB_TOKEN_FAILURE_LIMIT
    if not limit:
        return 0
    now = now or timezone.now()
    window = _token_window()
    start = (
        TokenFailures.objects.filter(address=address or UNKNOWN, failures__gte=limit, window_start__gt=now - window)
        .values_list("window_start", flat=True)
        .first()
    )
    return 0 if start is None else _seconds_until(start + window, now)


def record_token_failure(address: str | None, *, now: dt.datetime | None = None) -> int:
    """Count one failed token authentication from *address*; return :func:`token_retry_after` after it.

    One UPDATE adds the failure, or starts a new window when the row's has passed: atomic on
    PostgreSQL and SQLite alike, so concurrent failures on several app servers are all counted.
    """
    if not settings.MUSEHUB_TOKEN_FAILURE_LIMIT:
        return 0
    now = now or timezone.now()
    key = address or UNKNOWN
    passed = Q(window_start__lte=now - _token_window())
    bump = {
        "failures": Case(When(passed, then=Value(1)), default=F("failures") + 1, output_field=models.IntegerField()),
        "window_start": Case(When(passed, then=Value(now)), default=F("window_start")),
    }
    rows = TokenFailures.objects.filter(address=key)
    if not rows.update(**bump):
        try:
            with transaction.atomic():
                TokenFailures.objects.create(address=key, window_start=now, failures=1)
        except IntegrityError:  # another request made the row first: count into it
            rows.update(**bump)
        else:  # a new address: forget the ones whose window has passed (the table stays small)
            TokenFailures.objects.filter(passed).delete()
    return token_retry_after(address, now=now)


# --- sign-ins (django-axes) ---------------------------------------------------------------------------


class SignInThrottle(AxesDatabaseHandler):
    """django-axes' database handler with one limit for the account and another for the address.

    Axes compares the larger of the two counts with one ``AXES_FAILURE_LIMIT``; here each count has its
    own limit (settings). A successful sign-in forgets that account's failures from the same address
    (its owner's typos); failures from other addresses, and other accounts' failures from this one, stay.
    """

    def _counts(self, request, credentials: dict | None):
        """Yield (fresh failures of the account or of the address, their limit)."""
        fresh = AccessAttempt.objects.filter(attempt_time__gte=get_cool_off_threshold(request))
        username = get_client_username(request, credentials)
        if settings.MUSEHUB_SIGNIN_ACCOUNT_LIMIT and username is not None:
            yield fresh.filter(username=username), settings.MUSEHUB_SIGNIN_ACCOUNT_LIMIT
        if settings.MUSEHUB_SIGNIN_ADDRESS_LIMIT:
            yield fresh.filter(ip_address=request.axes_ip_address), settings.MUSEHUB_SIGNIN_ADDRESS_LIMIT

    def locked_until(self, request, credentials: dict | None = None) -> dt.datetime | None:
        """Return when the lock on this sign-in's account or address ends (None: neither is locked).

        A row holds the failures of one account, address and browser, stamped with the last one; a
        limit is reached while the newest rows hold that many failures, so it ends when the row that
        completes the count (newest first) leaves the cool-off time.
        """
        cool_off = get_cool_off(request)
        ends = []
        for attempts, limit in self._counts(request, credentials):
            total = 0
            newest_first = attempts.order_by("-attempt_time").values_list("attempt_time", "failures_since_start")
            for attempt_time, failures in newest_first[:limit]:  # every row holds at least one failure
                total += failures
                if total >= limit:
                    ends.append(attempt_time + cool_off)
                    break
        return max(ends, default=None)

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        return self.locked_until(request, credentials) is not None

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and not request.axes_locked_out and self.is_locked(request, credentials):
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes",
                request=request,
                username=get_client_username(request, credentials),
                ip_address=request.axes_ip_address,
            )

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        AccessAttempt.objects.filter(username=user.get_username(), ip_address=request.axes_ip_address).delete()


class SignInThrottleBackend(AxesStandaloneBackend):
    """First of ``AUTHENTICATION_BACKENDS``: refuses a locked account or address before a password is hashed.

    Code that authenticates without a request (a shell, ``Client.login`` in tests) has no client
    address and is not throttled; axes itself would raise there.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def signin_retry_after(request, credentials: dict | None = None) -> int:
    """Return the seconds until the locked account or address of this sign-in may try again."""
    AxesProxyHandler.update_request(request)
    until = SignInThrottle().locked_until(request, credentials)
    if until is None:
        return settings.MUSEHUB_SIGNIN_COOLOFF_SECONDS
    return _seconds_until(until, timezone.now())
