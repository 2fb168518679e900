"""The one place errors become HTTP responses: ``{"error": code, "detail": message}`` with the right status.

Domain errors (``musehub_core.errors``) and DRF's own errors take the same
shape through :func:`exception_handler` (DRF's ``EXCEPTION_HANDLER``); plain
Django code (middleware, the metrics view, unmatched routes) answers through
:func:`json_error`. Every 401 is ``unauthenticated`` and carries
``WWW-Authenticate``; every 503 carries ``Retry-After`` (a database outage is
one: ``database_unavailable``), and so does every 429 (``throttled``: too many failed
token authentications, ``hubhttp.throttle``).
"""

from __future__ import annotations

import logging
import sys

from django import db
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from hubhttp.instruments import count_error
from musehub_core.errors import (
    AuthenticationRequired,
    DatabaseUnavailable,
    MuseHubError,
    NotFound,
    PermissionDenied,
)

log = logging.getLogger("musehub.errors")

REALM = 'Bearer realm="musehub"'


def error_body(code: str, detail: str, **data) -> dict:
    body = {"error": code, "detail": detail}
    body.update(data)
    return body


def _headers_of(exc: MuseHubError) -> dict[str, str]:
    headers = dict(exc.headers())
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", REALM)
    return headers


def response_for(exc: MuseHubError) -> Response:
    """Return the DRF response for a domain error."""
    if exc.status >= 500 and exc.status != 503:
        log.error("domain error %s: %s", exc.code, exc.message)
    count_error(exc.code, exc.status)
    response = Response(error_body(exc.code, exc.message, **_public_data(exc)), status=exc.status)
    for name, value in _headers_of(exc).items():
        response[name] = value
    return response


def json_error(exc: MuseHubError) -> JsonResponse:
    """Return the plain Django response for a domain error (code outside DRF views)."""
    count_error(exc.code, exc.status)
    response = JsonResponse(error_body(exc.code, exc.message, **_public_data(exc)), status=exc.status)
    for name, value in _headers_of(exc).items():
        response[name] = value
    return response


def _public_data(exc: MuseHubError) -> dict:
    return {k: v for k, v in exc.data.items() if isinstance(v, (str, int, list, dict, bool))}


def _flatten(detail, field: str = "") -> list[str]:
    """Return DRF error details as 'field: message' sentences."""
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _flatten(value, f"{field}.{key}" if field else str(key))]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten(value, field)]
    return [f"{field}: {detail}" if field else str(detail)]


def database_down(exc: BaseException | None) -> bool:
    """Return True for an error that means the database could not be reached or dropped the connection."""
    return isinstance(exc, (db.OperationalError, db.InterfaceError))


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: domain errors and DRF's own errors in one JSON shape."""
    if database_down(exc):
        log.warning("database unavailable: %s", exc)
        return response_for(DatabaseUnavailable())
    if isinstance(exc, MuseHubError):
        set_rollback()
        return response_for(exc)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        set_rollback()
        return response_for(AuthenticationRequired("; ".join(_flatten(exc.detail))))
    if isinstance(exc, drf.APIException):
        set_rollback()
        message = "; ".join(_flatten(exc.detail))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        if isinstance(exc, drf.ValidationError):
            code = "bad_request"
        response = Response(error_body(str(code), message), status=exc.status_code)
        count_error(str(code), exc.status_code)
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None


def not_found(request, exception=None) -> JsonResponse:
    """``handler404``: an unmatched URL answers JSON like every other error."""
    return json_error(NotFound(f"No route matches {request.path!r}."))


def server_error(request) -> JsonResponse:
    """``handler500``: an unhandled exception answers JSON (the traceback goes to the log, never to the client).

    A database outage outside a DRF view (middleware, plain views) is a 503 with ``Retry-After`` here too.
    """
    if database_down(sys.exc_info()[1]):
        return json_error(DatabaseUnavailable())
    return json_error(MuseHubError())


def csrf_failure(request, reason: str = "") -> JsonResponse:
    """``CSRF_FAILURE_VIEW``: a refused form post answers JSON like every other error (the admin keeps its page)."""
    if request.path.startswith("/admin/"):
        from django.views.csrf import csrf_failure as admin_page

        return admin_page(request, reason)
    return json_error(PermissionDenied(f"The CSRF check failed ({reason}); send a Bearer token instead of a session."))
