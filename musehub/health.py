"""Health endpoints for load balancers, orchestrators and ``muse hub ping``.

- ``GET /health`` (liveness): 200 ``{"status": "ok"}`` while the process can
  answer at all. It touches neither the database nor storage, so a database
  outage does not get every app server restarted.
- ``GET /health/ready`` (readiness): 200 when the database answers
  ``SELECT 1`` and the mpack storage (bucket) is reachable; otherwise 503
  ``{"status": "unavailable", "failed": ["database" | "storage", …], "checks": {…}}``.
  Details of a failure go to the log, not to the (unauthenticated) caller.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_safe

from repos.storage.backend import get_backend

log = logging.getLogger("musehub.health")


@require_safe
def health(request):
    """Answer 200 while the process serves requests."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_storage() -> None:
    get_backend().check()


CHECKS = {"database": _check_database, "storage": _check_storage}


@require_safe
def ready(request):
    """Answer 200 when the database and storage are reachable, else 503 naming what failed."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the log has the detail
            log.warning("readiness check %s failed: %s", name, exc, extra={"check": name})
            results[name] = "unavailable"
        else:
            results[name] = "ok"
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed, "checks": results}, status=503)
    return JsonResponse({"status": "ready", "checks": results})
