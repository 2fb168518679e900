"""Signing in and out (Django's session auth) and a signed-in user's API tokens (issued and revoked here).

Failed sign-ins are throttled per account and per address (``hubhttp.throttle``, django-axes);
:func:`locked_out` is the page a refused one gets, the admin's sign-in included.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from hubhttp.throttle import signin_retry_after
from musehub_core.errors import Throttled
from repos.browse import api_tokens_of
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
        if form.is_valid():
            days = form.cleaned_data["expires_days"]
            expires = timezone.now() + dt.timedelta(days=days) if days else None
            row, clear = issue_token(request.user, name=form.cleaned_data["name"], expires_at=expires)
            # Shown once, on this response only: never stored, never put in a redirect or the session.
            return render(request, "web/tokens.html", _context(mine, TokenForm(), created=(row, clear)))
    return render(request, "web/tokens.html", _context(mine, form), status=400 if form.errors else 200)


def _context(mine, form: TokenForm, created=None) -> dict:
    now = timezone.now()
    rows = [(token, token_state(token, now=now)) for token in mine]
    return {"tokens": rows, "form": form, "created": created}
