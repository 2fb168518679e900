"""The one table of the HTTP plumbing: failed token authentications per client address (``hubhttp.throttle``).

Failed sign-ins are django-axes' tables (``axes_accessattempt``); both live in the
database so that every app server sees the same counts.
"""

from __future__ import annotations

from django.db import models


class TokenFailures(models.Model):
    """Failed Bearer-token authentications from one client address since ``window_start``.

    One row per address (an IPv4 address, or the /64 an IPv6 address belongs to); a failure after the
    window has passed starts a new window in the same row (one atomic UPDATE).
    """

    address = models.CharField(max_length=64, unique=True)
    window_start = models.DateTimeField(db_index=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "musehub_token_failures"
        verbose_name = "token failures of an address"
        verbose_name_plural = "token failures by address"

    def __str__(self) -> str:
        return f"{self.address}: {self.failures} since {self.window_start:%Y-%m-%d %H:%M:%S}"
