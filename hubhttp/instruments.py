"""Instruments: the Prometheus counters the hub counts with, and the push/fetch record.

Where the numbers come from, each counted in one place:

- requests: ``musehub.metrics.RequestMetricsMiddleware``;
- pushes and fetches: the :func:`transfer` decorator on the protocol entry
  points (``wire.push``, ``wire.fetch``, ``wire.mwp``), which also writes their log line;
- storage: :func:`observe_storage`, an observer of every ``MPackStore``
  (``MUSEHUB_STORAGE_OBSERVERS`` in settings);
- error codes: :func:`count_error`, called by ``hubhttp.errors`` (domain and
  DRF errors) and by the middleware for exceptions no view handled.

``musehub.metrics`` exports them at ``GET /metrics``.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram

from hubhttp.context import current_user_name
from musehub_core.errors import MuseHubError

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
SIZE_BUCKETS = tuple(1024 * 4**n for n in range(12))  # 1 KiB … 4 GiB
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("musehub_http_requests", "HTTP requests answered.", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "musehub_http_request_duration_seconds", "Time to answer an HTTP request.", ["route", "method"],
    buckets=DURATION_BUCKETS,
)  # fmt: skip
REQUEST_BYTES = Counter("musehub_http_request_body_bytes", "Request body bytes received (Content-Length).", ["route"])
RESPONSE_BYTES = Counter("musehub_http_response_body_bytes", "Response body bytes sent.", ["route"])
ERRORS = Counter("musehub_errors", "Error responses by error code and HTTP status.", ["code", "status"])
STORAGE_REQUESTS = Counter("musehub_storage_requests", "Requests made to object storage.", ["op"])
STORAGE_BYTES = Counter("musehub_storage_bytes", "Bytes read from or written to object storage.", ["op"])

PUSHES = Counter("musehub_pushes", "Push calls by protocol and outcome (ok or an error code).", ["protocol", "outcome"])
PUSH_SECONDS = Histogram(
    "musehub_push_duration_seconds", "Time to verify and store a push.", ["protocol"], buckets=DURATION_BUCKETS
)
PUSH_BYTES = Histogram("musehub_push_size_bytes", "Bytes a push stored.", ["protocol"], buckets=SIZE_BUCKETS)
FETCHES = Counter(
    "musehub_fetches", "Fetch calls by protocol and outcome (ok or an error code).", ["protocol", "outcome"]
)
FETCH_SECONDS = Histogram(
    "musehub_fetch_duration_seconds", "Time to build a fetch answer.", ["protocol"], buckets=DURATION_BUCKETS
)
FETCH_BYTES = Histogram("musehub_fetch_size_bytes", "Bytes a fetch sent.", ["protocol"], buckets=SIZE_BUCKETS)

_KINDS = {"push": (PUSHES, PUSH_SECONDS, PUSH_BYTES), "fetch": (FETCHES, FETCH_SECONDS, FETCH_BYTES)}


def count_error(code: str, status: int) -> None:
    """Count one error response with error *code* and HTTP *status*."""
    ERRORS.labels(code=code, status=str(status)).inc()


def observe_storage(event: Any) -> None:
    """Count one object storage request (a ``repos.storage.backend.StorageOp``) and its bytes."""
    STORAGE_REQUESTS.labels(op=event.op).inc()
    if event.nbytes:
        STORAGE_BYTES.labels(op=event.op).inc(event.nbytes)


# --- pushes and fetches ---------------------------------------------------------------------------


@dataclass
class _Transfer:
    kind: str
    protocol: str
    fields: dict[str, Any] = field(default_factory=dict)


_transfer: contextvars.ContextVar[_Transfer | None] = contextvars.ContextVar("musehub_transfer", default=None)


def note_transfer(**fields: Any) -> None:
    """Attach facts (repo, user, bytes, commits, blobs, branch, …) to the push or fetch running now."""
    current = _transfer.get()
    if current is not None:
        current.fields.update(fields)


def transfer(kind: str, protocol: str, logger: str) -> Callable:
    """Decorate a push (*kind* ``push``) or fetch (``fetch``) service function of *protocol*.

    Every call is timed, counted by outcome (``ok`` or the domain error's code)
    and logged as one line on *logger* with the facts the function gave
    :func:`note_transfer`: repo, user, bytes, counts, duration_ms, outcome.
    ``bytes`` also feeds the size histogram.
    """
    calls, seconds, sizes = _KINDS[kind]
    log = logging.getLogger(logger)

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current = _Transfer(kind, protocol)
            token = _transfer.set(current)
            start = time.perf_counter()
            outcome = "ok"
            try:
                return fn(*args, **kwargs)
            except MuseHubError as exc:
                outcome = exc.code
                raise
            except Exception:
                outcome = "error"
                raise
            finally:
                _transfer.reset(token)
                elapsed = time.perf_counter() - start
                calls.labels(protocol=protocol, outcome=outcome).inc()
                seconds.labels(protocol=protocol).observe(elapsed)
                if outcome == "ok" and current.fields.get("bytes") is not None:
                    sizes.labels(protocol=protocol).observe(current.fields["bytes"])
                facts = {"user": current_user_name(), **current.fields}
                log.log(
                    logging.INFO if outcome == "ok" else logging.WARNING,
                    "%s %s %s",
                    kind,
                    facts.get("repo", "-"),
                    outcome,
                    extra={
                        "event": kind,
                        "protocol": protocol,
                        "outcome": outcome,
                        "duration_ms": round(elapsed * 1000, 1),
                        **facts,
                    },
                )

        return wrapper

    return decorate
