"""Refuse request bodies larger than the hub's limit before a view reads them."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse


class RequestSizeLimitMiddleware:
    """Answer 413 when Content-Length exceeds MUSEHUB_MAX_REQUEST_BYTES.

    MWP pushes (``…/push`` and ``…/push/objects``, which carry whole bundles and
    object batches) get MUSEHUB_MAX_PUSH_REQUEST_BYTES instead. Signed storage
    uploads are exempt: they are bounded by their upload slot's declared size.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.MUSEHUB_MAX_REQUEST_BYTES
        if request.path.endswith(("/push", "/push/objects")) and not request.path.endswith("/mpack/push"):
            limit = settings.MUSEHUB_MAX_PUSH_REQUEST_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit and not request.path.startswith("/_storage/"):
            return JsonResponse(
                {
                    "error": "too_large",
                    "detail": f"The request body is {length} bytes; this hub accepts at most {limit}.",
                },
                status=413,
            )
        return self.get_response(request)
