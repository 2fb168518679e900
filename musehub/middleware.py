"""Refuse requests the hub will not read, before a view reads them.

Bodies larger than the hub's limit, or chunked; paths and query strings that
hold a NUL character (PostgreSQL cannot store or compare one: every query
with it is a ``DataError``, so it is refused here once for every route).
"""

from __future__ import annotations

from django.conf import settings

from hubhttp.errors import json_error
from musehub.logs import route_of
from musehub_core.errors import BadRequest, LengthRequired, NotFound, PayloadTooLarge
from web.pages import error_page

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


class RefuseNulMiddleware:
    """Refuse a path or query parameter holding a NUL character: a 404 page for the web, a 400 JSON error elsewhere.

    No name, ref, path or parameter of the hub may hold one, and PostgreSQL
    refuses it in any query (``DataError``, a 500), so this is checked before
    any view or lookup runs.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or ("%00" in query and _has_nul(request.GET)):
            sentence = "The URL holds a NUL character (%00); no name, ref or path of this hub does."
            if route_of(request).startswith("web-"):  # no page has such a name: the page's own 404
                return error_page(request, NotFound(sentence))
            return json_error(BadRequest(sentence))
        return self.get_response(request)


def _has_nul(params) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in params.lists())
