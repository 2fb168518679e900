"""API tokens: issue, check, describe and revoke. Only a token's SHA-256 hash is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from musehub_core.errors import AuthenticationRequired
from repos.models import ApiToken

TOKEN_PREFIX = "mh_"
ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, *, name: str = "", expires_at: dt.datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token for *user* and return (row, clear text); the clear text is not stored."""
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, token_hash=hash_token(clear), prefix=clear[:10], expires_at=expires_at
    )
    return row, clear


def token_state(token: ApiToken, *, now: dt.datetime | None = None) -> str:
    """Return ``active``, ``revoked`` or ``expired``."""
    if token.revoked_at is not None:
        return REVOKED
    if token.expires_at is not None and token.expires_at <= (now or timezone.now()):
        return EXPIRED
    return ACTIVE


def user_for_token(clear: str) -> User:
    """Return the active user owning *clear*; raise AuthenticationRequired if it is unknown, revoked or expired."""
    row = ApiToken.objects.select_related("user").filter(token_hash=hash_token(clear)).first()
    now = timezone.now()
    if row is None or token_state(row, now=now) == REVOKED or not row.user.is_active:
        raise AuthenticationRequired("The token is invalid or has been revoked.")
    if token_state(row, now=now) == EXPIRED:
        raise AuthenticationRequired("The token has expired.")
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=5):
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user


def revoke_tokens(tokens: QuerySet[ApiToken], *, prefix: str | None = None) -> int:
    """Revoke the active tokens of *tokens* (only those starting with *prefix* when given); return how many."""
    chosen = tokens.filter(revoked_at__isnull=True)
    if prefix:
        chosen = chosen.filter(prefix__startswith=prefix[:10])
    return chosen.update(revoked_at=timezone.now())
