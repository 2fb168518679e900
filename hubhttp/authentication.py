"""Bearer tokens on the HTTP faces: ``Authorization: Bearer <token>`` (checking is ``repos.services.tokens``)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from musehub_core.errors import AuthenticationRequired
from repos.services.tokens import user_for_token

REALM = 'Bearer realm="musehub"'  # hubhttp.errors.REALM: the same realm on every 401


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication by hub token; every 401 it causes carries ``WWW-Authenticate``."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in (b"bearer", b"token"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        try:
            clear = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The token is not valid text.") from None
        try:
            return user_for_token(clear), clear
        except AuthenticationRequired as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None

    def authenticate_header(self, request) -> str:
        return REALM
