"""The request running now: its id and user, for log lines and push/fetch records made below the views."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from django.utils.functional import empty


@dataclass
class RequestContext:
    request_id: str
    request: Any


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("musehub_request", default=None)


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context else None


def user_name(request: Any) -> str:
    """Return the username of the request's user, or ``-``; never evaluates a lazy (session) user."""
    user = getattr(request, "user", None) if request is not None else None
    wrapped = getattr(user, "_wrapped", user)
    if user is None or wrapped is empty or not getattr(wrapped, "is_authenticated", False):
        return "-"
    return wrapped.get_username()


def current_user_name() -> str:
    """Return the username of the user of the request running now (``-`` outside requests)."""
    context = _current.get()
    return user_name(context.request if context else None)


def bind_request(context: RequestContext) -> contextvars.Token:
    """Make *context* the current request's (until :func:`release_request` with the returned token)."""
    return _current.set(context)


def release_request(token: contextvars.Token) -> None:
    _current.reset(token)
