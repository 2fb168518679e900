"""Helpers every HTTP face uses: validate a body with a serializer, make a URL absolute, the JSON catch-all."""

from __future__ import annotations

from django.conf import settings
from django.views.decorators.csrf import csrf_exempt

from hubhttp.errors import not_found
from musehub_core.errors import BadRequest


def validated(serializer_class, data) -> dict:
    """Return *data* validated by *serializer_class* (a 400 naming each bad field otherwise)."""
    if not isinstance(data, dict):
        raise BadRequest("The body must be a map (a msgpack or JSON object).")
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def absolute(request, url: str) -> str:
    """Return *url* as an absolute URL (hub-signed URLs are paths on this hub)."""
    base = settings.MUSEHUB_PUBLIC_URL
    if url.startswith("/") and base:
        return base.rstrip("/") + url
    return request.build_absolute_uri(url)


@csrf_exempt  # an unknown URL is a 404 whatever the method, never a CSRF page
def unmatched(request):
    """The last route: answer JSON 404 for any URL no other route takes (Django's debug page is HTML)."""
    return not_found(request)
