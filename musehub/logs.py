"""Structured logs: a JSON formatter, the request context, and one log line per request.

Production mode (``MUSEHUB_ENV=production``) writes every log record as one
JSON object per line (``MUSEHUB_LOG_FORMAT`` switches it explicitly). Records
written while a request runs carry its ``request_id`` (the proxy's
``X-Request-ID`` when it sends a sane one, else a fresh id, echoed back in the
response), so a push or fetch line can be matched with its request line.

Nothing here logs headers, query strings or bodies. As a second line of
defence the formatter masks anything shaped like a Bearer token, a hub token
(``mh_…``) or a hub-signed storage URL (``/_storage/<signature>``) in messages,
fields and tracebacks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from typing import Any

from django.conf import settings
from django.urls import Resolver404, resolve

from hubhttp.context import RequestContext, bind_request, current_request_id, release_request, user_name

log = logging.getLogger("musehub.request")

_SECRETS = re.compile(
    r"(?i)\b(bearer)(\s+)[^\s'\",]+"  # Authorization: Bearer <token>
    r"|\bmh_[A-Za-z0-9_\-]{8,}"  # clear hub tokens
    r"|(/_storage/)[^\s'\"?]+"  # hub-signed storage URLs
    r"|(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"]+"  # presigned S3 URLs
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
# Django's request logger adds the request object itself: its route and status are in the request line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "request",
}
# Routes too frequent to log when they succeed (load balancer probes and scrapes).
QUIET_ROUTES = frozenset({"health", "health-ready", "metrics", "static"})


def redact(text: str) -> str:
    """Return *text* with tokens and signatures replaced by ``[redacted]``."""

    def mask(match: re.Match) -> str:
        if match.group(1):
            return f"{match.group(1)}{match.group(2)}[redacted]"
        if match.group(3):
            return f"{match.group(3)}[redacted]"
        if match.group(4):
            return f"{match.group(4)}[redacted]"
        return "[redacted]"

    return _SECRETS.sub(mask, text)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: ts, level, logger, message, request_id, the ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _plain(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The development format: ``LEVEL logger: message key=value …`` (secrets masked too)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{key}={_plain(value)}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        line = f"{record.levelname} {record.name}: {record.getMessage()}" + (f" {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _plain(value: Any) -> Any:
    """Return *value* as something JSON can hold, strings masked (objects become their str)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return redact(str(value))


def route_of(request) -> str:
    """Return the name of the URL pattern *request* matched (``static``, ``unmatched`` when none): a bounded label."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            static = "/" + settings.STATIC_URL.lstrip("/")
            return "static" if request.path_info.startswith(static) else "unmatched"
    return match.view_name or match.route or "unmatched"


def body_sizes(request, response) -> tuple[int, int]:
    """Return (request body bytes as declared by Content-Length, response body bytes; a stream's Content-Length)."""
    try:
        received = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        received = 0
    sent = int(response.get("Content-Length") or 0) if response.streaming else len(response.content)
    return max(received, 0), sent


def _safe_path(request) -> str:
    return redact(request.path)


class RequestLogMiddleware:
    """Log one ``request`` line per request and bind the request context for every other line.

    Fields: method, route, path (signed storage paths masked), status,
    duration_ms, user, owner and repo (from the URL), bytes_in, bytes_out.
    Successful health checks and metric scrapes are not logged.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        token = bind_request(RequestContext(request_id, request))
        start = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            self._log(request, response, time.perf_counter() - start)
            return response
        finally:
            release_request(token)

    @staticmethod
    def _log(request, response, seconds: float) -> None:
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        if not log.isEnabledFor(level):
            return
        route = route_of(request)
        if route in QUIET_ROUTES and response.status_code < 400:
            return
        kwargs = getattr(getattr(request, "resolver_match", None), "kwargs", {}) or {}
        bytes_in, bytes_out = body_sizes(request, response)
        log.log(
            level,
            "%s %s %s",
            request.method,
            _safe_path(request),
            response.status_code,
            extra={
                "event": "request",
                "method": request.method,
                "route": route,
                "path": _safe_path(request),
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 1),
                "user": user_name(request),
                "owner": kwargs.get("owner"),
                "repo": kwargs.get("slug"),
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            },
        )
