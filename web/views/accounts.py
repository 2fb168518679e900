"""Signing in and out (Django's session auth) and a signed-in user's API tokens (issued and revoked here).

Issuing a token asks for the password again when the session's last sign-in
(or the last time the password was asked) is older than
``MUSEHUB_SUDO_SECONDS``, as GitHub's "sudo mode" does: a session left open on
a shared machine cannot mint a token that outlives it.

Failed sign-ins are throttled per account and per address (``hubhttp.throttle``, django-axes);
:func:`locked_out` is the page a refused one gets, the admin's sign-in included.
"""

from __future__ import annotations

import datetime as dt
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from hubhttp.throttle import signin_retry_after
from musehub_core.errors import Throttled
from repos.selectors import api_tokens_of
from repos.services.tokens import issue_token, revoke_tokens, token_state
from web.forms import TokenForm
from web.pages import error_page


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """Sign out (POST only, with CSRF, as Django requires)."""


def locked_out(request: HttpRequest, response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the 429 page (with ``Retry-After``) of a sign-in refused for too many failures."""
    wait = signin_retry_after(request, credentials)
    minutes = -(-wait // 60)
    message = (
        "Too many failed sign-ins for this account or from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    return error_page(request, Throttled(message, retry_after=wait))


@never_cache
@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """``accounts/tokens``: list the user's tokens; POST ``create`` issues one (shown once), ``revoke`` revokes one."""
    mine = api_tokens_of(request.user)
    form = TokenForm()
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            prefix = request.POST.get("prefix", "")
            if prefix and revoke_tokens(mine, prefix=prefix):
                messages.success(request, f"Token {prefix}… revoked.")
            else:
                messages.error(request, "No active token with that prefix.")
            return redirect("web-tokens")
        form = TokenForm(request.POST)
        if form.is_valid() and _confirmed(request, form):
            days = form.cleaned_data["expires_days"]
            expires = timezone.now() + dt.timedelta(days=days) if days else None
            row, clear = issue_token(request.user, name=form.cleaned_data["name"], expires_at=expires)
            # Shown once, on this response only: never stored, never put in a redirect or the session.
            context = _context(request, mine, TokenForm(), created=(row, clear))
            return render(request, "web/tokens.html", context)
    return render(request, "web/tokens.html", _context(request, mine, form), status=400 if form.errors else 200)


VERIFIED_AT = "musehub_verified_at"  # session key: when this session last gave the password (epoch seconds)


def remember_sign_in(sender, request: HttpRequest | None, user, **kwargs) -> None:
    """``user_logged_in`` receiver: this session gave the password now (web/apps.py connects it).

    Kept in the session, not read from ``last_login``: a sign-in on another
    device must not make a stale session here fresh.
    """
    if request is not None and hasattr(request, "session"):
        request.session[VERIFIED_AT] = time.time()


def _verified_recently(request: HttpRequest) -> bool:
    """Whether this session gave the password (at sign-in, or asked again) within MUSEHUB_SUDO_SECONDS."""
    return time.time() - request.session.get(VERIFIED_AT, 0) <= settings.MUSEHUB_SUDO_SECONDS


def _confirmed(request: HttpRequest, form: TokenForm) -> bool:
    """Check the password when it must be asked again; add a form error and return False when it is missing or wrong.

    The check goes through ``authenticate``, so wrong passwords count toward the sign-in throttle.
    """
    if _verified_recently(request):
        return True
    password = form.cleaned_data.get("password") or ""
    if not password:
        form.add_error("password", "Confirm your password: your last sign-in is more than a few minutes old.")
        return False
    user = authenticate(request, username=request.user.get_username(), password=password)
    if user is None or user.pk != request.user.pk:
        form.add_error("password", "That password is not right.")
        return False
    request.session[VERIFIED_AT] = time.time()
    return True


def _context(request: HttpRequest, mine, form: TokenForm, created=None) -> dict:
    now = timezone.now()
    rows = [(token, token_state(token, now=now)) for token in mine]
    return {"tokens": rows, "form": form, "created": created, "ask_password": not _verified_recently(request)}
