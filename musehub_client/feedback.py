"""How the client reports while it works: notes, progress and phases, through objects the caller passes in.

Library code never prints. It calls ``note(message)`` and
``progress(label, total)`` on a :class:`Feedback`; the command line passes
:class:`musehub_client.cli.Output` (stderr, unless quiet), library callers
anything with those two methods, or nothing (:class:`Silent`). Operations
also run each of their phases inside a caller's :data:`PhaseHook`, so a caller
(the benchmark) can time them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from musehub_core.formatting import short_id


class ProgressReport(Protocol):
    """One transfer's progress: bytes added with :meth:`update`, then :meth:`close` once."""

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class Feedback(Protocol):
    """Where notes and progress go."""

    def note(self, message: str) -> None: ...

    def progress(self, label: str, total: int | None) -> ProgressReport: ...


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class Silent:
    """Feedback that shows nothing (the default of every library function)."""

    def note(self, message: str) -> None:
        pass

    def progress(self, label: str, total: int | None) -> ProgressReport:
        return _NoProgress()


def warn(out: Feedback, message: str) -> None:
    """Give *out* a warning: through its ``warn`` method when it has one (shown even when quiet), else as a note."""
    getattr(out, "warn", out.note)(message)


# --- phases -------------------------------------------------------------------------------

PhaseHook = Callable[[str], AbstractContextManager[object]]
"""Called with a phase name ("scan", "pack", "upload", ...) around that phase; returns a context manager."""


def no_phases(name: str) -> AbstractContextManager[object]:
    """The PhaseHook that does nothing."""
    return nullcontext()


class Phases:
    """A PhaseHook that adds up each phase's wall time in ``seconds``, run inside the caller's *hook*."""

    def __init__(self, hook: PhaseHook | None) -> None:
        self.hook = hook or no_phases
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        with self.hook(name):
            started = time.perf_counter()
            try:
                yield
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def short(object_id: str | None) -> str:
    """Return the first 12 hex digits of an id (:func:`musehub_core.formatting.short_id`), or "(none)"."""
    return short_id(object_id) or "(none)"
