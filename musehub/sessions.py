"""The session engine: Django's database sessions, taking only keys Django itself makes.

Django accepts any cookie value of 8 characters or more as a session key and
looks it up; one holding NUL is a ``DataError`` (a 500) on PostgreSQL for any
page. Keys Django makes are lowercase letters and digits, so anything else is
no session at all (the visitor is anonymous).
"""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore


class SessionStore(DatabaseSessionStore):
    def _validate_session_key(self, key: str | None) -> bool:
        # Django's own check (8 characters or more) is private: django-stubs does not declare it.
        valid = super()._validate_session_key(key)  # type: ignore[misc]
        return key is not None and bool(valid) and key.isascii() and key.isalnum()
