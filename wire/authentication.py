"""Bearer tokens: ``Authorization: Bearer <token>``, checked against stored SHA-256 hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from repos.models import ApiToken

TOKEN_PREFIX = "mh_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    user: AbstractBaseUser, *, name: str = "", expires_at: dt.datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for *user* and return (row, clear text); the clear text is not stored."""
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, token_hash=hash_token(clear), prefix=clear[:10], expires_at=expires_at
    )
    return row, clear


def user_for_token(clear: str) -> AbstractBaseUser:
    """Return the active user owning *clear*; raise AuthenticationFailed if it is unknown, revoked or expired."""
    row = ApiToken.objects.select_related("user").filter(token_hash=hash_token(clear)).first()
    now = timezone.now()
    if row is None or row.revoked_at is not None or not row.user.is_active:
        raise exceptions.AuthenticationFailed("The token is invalid or has been revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise exceptions.AuthenticationFailed("The token has expired.")
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=5):
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user


class BearerTokenAuthentication(authentication.BaseAuthentication):
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
        return user_for_token(clear), clear

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="musehub"'
