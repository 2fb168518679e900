"""Prometheus metrics: requests per route, push and fetch sizes and durations, storage requests, errors by code.

``GET /metrics`` answers in the Prometheus text format. With
``MUSEHUB_METRICS_TOKEN`` set it wants ``Authorization: Bearer <that token>``
(401 otherwise), from any address. Without a token it answers only direct
connections from ``MUSEHUB_METRICS_ALLOW`` (loopback by default): a request
that came through a proxy (it carries ``X-Forwarded-For``, ``X-Real-IP`` or
``Forwarded``) is never let in by address, since behind a proxy on the same
host every client would be 127.0.0.1. Anyone else gets the 404 of an unknown URL.
Labels are bounded sets: URL pattern names (never raw paths), HTTP methods and
statuses, error codes, storage operation names.

Values live in the process that counts them. Under gunicorn with several
workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory private to the
server: every worker then writes its values there and ``/metrics`` adds them
up (``prometheus_client.multiprocess``; ``deploy/gunicorn.conf.py`` empties the
directory at start and marks exited workers dead). Each app server exports its
own numbers; Prometheus scrapes every server and sums them.

The instruments themselves, and where each number is counted, are in
:mod:`hubhttp.instruments`; this module counts requests and exports.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from hubhttp.errors import json_error, not_found
from hubhttp.instruments import METHODS, REQUEST_BYTES, REQUEST_SECONDS, REQUESTS, RESPONSE_BYTES, count_error
from hubhttp.throttle import parse_ip
from musehub.logs import body_sizes, route_of
from musehub_core.errors import AuthenticationRequired

# --- requests ---------------------------------------------------------------------------------------


class RequestMetricsMiddleware:
    """Count and time every request by URL pattern name, method and status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        route = route_of(request)
        method = request.method if request.method in METHODS else "other"
        REQUESTS.labels(route=route, method=method, status=str(response.status_code)).inc()
        REQUEST_SECONDS.labels(route=route, method=method).observe(time.perf_counter() - start)
        received, sent = body_sizes(request, response)
        if received > 0:
            REQUEST_BYTES.labels(route=route).inc(received)
        if sent:
            RESPONSE_BYTES.labels(route=route).inc(sent)
        return response

    def process_exception(self, request, exception):
        """Count the exceptions views left unhandled (Django answers them)."""
        if isinstance(exception, Http404):
            count_error("not_found", 404)
        elif isinstance(exception, PermissionDenied):
            count_error("forbidden", 403)
        elif isinstance(exception, SuspiciousOperation):
            count_error("bad_request", 400)
        else:
            count_error("internal_error", 500)
        return None


def registry() -> CollectorRegistry:
    """Return the registry to export: this process's, or every worker's under PROMETHEUS_MULTIPROC_DIR."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


# Headers a reverse proxy adds: a request carrying one is not let in by its connection's address.
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


@lru_cache(maxsize=8)
def _networks(allow: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in allow)


def allowed_by_address(request) -> bool:
    """Return True when *request* came straight from an address in MUSEHUB_METRICS_ALLOW (not through a proxy)."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    address = parse_ip(request.META.get("REMOTE_ADDR", ""))
    return address is not None and any(
        address in network for network in _networks(tuple(settings.MUSEHUB_METRICS_ALLOW))
    )


@require_safe
def metrics_view(request):
    """Answer the metrics in the Prometheus text format to the token's holder, or to an allowed address."""
    token = settings.MUSEHUB_METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            return json_error(AuthenticationRequired("Send 'Authorization: Bearer <MUSEHUB_METRICS_TOKEN>'."))
    elif not allowed_by_address(request):
        return not_found(request)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
