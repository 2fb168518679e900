"""Refuse request bodies the hub will not read: larger than its limit, or chunked, before a view reads them."""

from __future__ import annotations

from django.conf import settings

from hubhttp.errors import json_error
from musehub.logs import route_of
from musehub_core.errors import LengthRequired, PayloadTooLarge

# Routes (URL pattern names) that carry whole MWP bundles and object batches.
PUSH_ROUTES = frozenset({"mwp-push", "mwp-push-objects"})
# Signed storage uploads are bounded by their upload slot's declared size instead.
EXEMPT_ROUTES = frozenset({"storage-signed"})


class RequestSizeLimitMiddleware:
    """Answer 413 when Content-Length exceeds MUSEHUB_MAX_REQUEST_BYTES.

    MWP pushes (:data:`PUSH_ROUTES`) get MUSEHUB_MAX_PUSH_REQUEST_BYTES
    instead; signed storage uploads are exempt. A chunked body (no
    Content-Length) is 411: WSGI would hand it to Django as empty. Routes are told apart by their
    URL pattern names, so the URL map stays the only place paths are spelled.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # WSGI hands Django a chunked body as an empty one: refuse it rather than act on nothing.
            return json_error(LengthRequired())
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > min(settings.MUSEHUB_MAX_REQUEST_BYTES, settings.MUSEHUB_MAX_PUSH_REQUEST_BYTES):
            route = route_of(request)
            limit = (
                settings.MUSEHUB_MAX_PUSH_REQUEST_BYTES if route in PUSH_ROUTES else settings.MUSEHUB_MAX_REQUEST_BYTES
            )
            if length > limit and route not in EXEMPT_ROUTES:
                return json_error(
                    PayloadTooLarge(f"The request body is {length} bytes; this hub accepts at most {limit}.")
                )
        return self.get_response(request)
