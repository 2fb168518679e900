"""Give back to the system the memory a big request freed.

glibc's malloc keeps what a request freed in its arenas, for reuse; a worker
that served a 25,000-blob push or clone stayed 100 MB and more above idle, and
the next big request's peak stood on top of that (the benchmark's W5 clone
peaked at 294 MB against its 300 MB limit, 226 MB of it left by the pushes
before it). After each request (:data:`django.core.signals.request_finished`,
once a streamed reply has gone out) the worker compares its resident size with
where it stood after its last trim; once it is ``MUSEHUB_TRIM_AFTER_MB`` above,
``malloc_trim(0)`` hands the free pages back (a few milliseconds). Where the C
library has no ``malloc_trim`` (musl, macOS) or there is no ``/proc``, nothing
happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """Return this process's resident memory in bytes, or None where /proc cannot say."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim() -> Callable[[int], Any] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class Trimmer:
    """Calls ``malloc_trim(0)`` after a request once resident memory grew *threshold_bytes* past its last low."""

    def __init__(self, threshold_bytes: int) -> None:
        self.threshold = threshold_bytes
        self.trim = _malloc_trim() if threshold_bytes > 0 else None
        self.low: int | None = None  # resident size after the last trim, or the lowest seen since
        self._lock = threading.Lock()

    def after_request(self, **_signal: Any) -> bool:
        """Trim if memory grew enough since the last low; return whether it did (a request_finished receiver)."""
        if self.trim is None:
            return False
        resident = resident_bytes()
        if resident is None:
            return False
        with self._lock:  # the worker's threads finish requests at once; one trim is enough
            if self.low is None or resident < self.low:
                self.low = resident
                return False
            if resident - self.low < self.threshold:
                return False
            self.trim(0)
            self.low = resident_bytes() or resident
            return True
