"""The one place domain errors become HTTP responses: ``{"error": code, "detail": message}``."""

from __future__ import annotations

import logging

from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from musehub.metrics import count_error
from musehub_core.errors import MuseHubError

log = logging.getLogger("musehub.errors")


def error_body(code: str, detail: str, **data) -> dict:
    body = {"error": code, "detail": detail}
    body.update(data)
    return body


def response_for(exc: MuseHubError) -> Response:
    """Return the response for a domain error (used by DRF views and plain views alike)."""
    if exc.status >= 500 and exc.status != 503:
        log.error("domain error %s: %s", exc.code, exc.message)
    count_error(exc.code, exc.status)
    response = Response(error_body(exc.code, exc.message, **_public_data(exc)), status=exc.status)
    for name, value in exc.headers().items():
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


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: domain errors and DRF's own errors in one JSON shape."""
    if isinstance(exc, MuseHubError):
        set_rollback()
        return response_for(exc)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if isinstance(exc, drf.APIException):
        set_rollback()
        message = "; ".join(_flatten(exc.detail))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        if isinstance(exc, drf.ValidationError):
            code = "bad_request"
        response = Response(error_body(str(code), message), status=exc.status_code)
        count_error(str(code), exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None
