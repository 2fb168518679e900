"""Bearer tokens on the HTTP faces: ``Authorization: Bearer <token>`` (checking is ``repos.services.tokens``).

Failed token authentications are counted per client address (``hubhttp.throttle``): past
``MUSEHUB_TOKEN_FAILURE_LIMIT`` every token request from that address answers 429 with
``Retry-After`` until its window ends, a right token included (else guessing would go on unslowed).
"""

from __future__ import annotations

from rest_framework import authentication, exceptions

from hubhttp.throttle import client_address, record_token_failure, token_retry_after
from musehub_core.errors import AuthenticationRequired, Throttled
from repos.services.tokens import user_for_token

REALM = 'Bearer realm="musehub"'  # hubhttp.errors.REALM: the same realm on every 401
TOO_MANY = "Too many failed token authentications from your address."


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication by hub token; every 401 it causes carries ``WWW-Authenticate``."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in (b"bearer", b"token"):
            return None
        address = client_address(request)
        if wait := token_retry_after(address):
            raise Throttled(TOO_MANY, retry_after=wait)
        try:
            return self._user_of(header)
        except exceptions.AuthenticationFailed:
            if wait := record_token_failure(address):
                raise Throttled(TOO_MANY, retry_after=wait) from None
            raise

    def _user_of(self, header: list[bytes]):
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
