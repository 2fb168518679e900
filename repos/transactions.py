"""Transactions that survive the database's own conflict resolution.

PostgreSQL aborts one of two transactions that deadlock or fail to serialize
(SQLSTATE 40P01, 40001); SQLite answers "database is locked" when a writer
waits too long. Both are transient: the same work succeeds when run again.
:func:`run_atomic` runs a block in a transaction and retries it then.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, transaction

T = TypeVar("T")
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(exc: BaseException) -> bool:
    """Return True for a deadlock, a serialization failure or a locked SQLite database."""
    cause = exc.__cause__
    state = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)
    if state in TRANSIENT_SQLSTATES:
        return True
    return "database is locked" in str(exc)


def run_atomic(block: Callable[[], T], *, attempts: int = 4) -> T:
    """Return ``block()`` run in one transaction, retried (with a short jittered pause) when it lost a race.

    *block* must be safe to run again: everything it did in the aborted attempt was rolled back.
    """
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return block()
        except OperationalError as exc:
            if attempt + 1 >= attempts or not is_transient(exc):
                raise
            time.sleep(0.02 * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")
