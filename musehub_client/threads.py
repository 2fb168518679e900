"""Work on several threads: how many, in which batches, and which files are worth a thread.

Hashing (hashlib), compressing (zstandard), reading and writing files release
the GIL, so a thread pool uses every core on big files. Work is handed out in
batches (by bytes and by count) so small files do not cost a task each. For a
small file the work is a few short calls, and threads handing the GIL back
and forth cost more than they save: on 2 cores a 25,000-file tree (mean
4 KiB) was scanned, packed and checked out about twice as slowly on two
threads as on one. :func:`run_batches` therefore gives threads only the files
of at least ``PARALLEL_MIN_BYTES`` and does the rest on the calling thread,
unless a batch's work holds the GIL only briefly whatever its files: a scan's
and a push's reads, which read a whole batch in one C call
(:func:`musehub_client.files.read_files`), give threads every batch.
:class:`Background` runs one call (a push's ``/refs``) on a daemon thread
while the calling thread works.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")

THREADS_ENV = "MUSEHUB_CLIENT_THREADS"
MAX_THREADS = 16
BATCH_BYTES = 4 * 1024 * 1024
BATCH_FILES = 256
PARALLEL_MIN_BYTES = 64 * 1024  # smaller files are handled on the calling thread


def default_workers() -> int:
    """Return how many threads hash and compress: ``$MUSEHUB_CLIENT_THREADS``, else the CPU count (at most 16)."""
    configured = os.environ.get(THREADS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


def batches(items: Iterable[tuple[str, str, int]]) -> Iterator[list[tuple[str, str]]]:
    """Yield (key, path) pairs of *items* ((key, path, size), in order) in runs of at most BATCH_BYTES or BATCH_FILES."""
    batch: list[tuple[str, str]] = []
    weight = 0
    for key, path, size in items:
        batch.append((key, path))
        weight += size
        if weight >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            yield batch
            batch, weight = [], 0
    if batch:
        yield batch


def _runs(
    items: Iterable[tuple[str, str, int]], parallel_min_bytes: int
) -> Iterator[tuple[bool, list[tuple[str, str]]]]:
    """Yield (big, batch) for *items* in order: batches as :func:`batches` cuts them, and cut where bigness changes."""
    batch: list[tuple[str, str]] = []
    weight = 0
    big = False
    for key, path, size in items:
        is_big = size >= parallel_min_bytes
        if batch and (is_big != big or weight >= BATCH_BYTES or len(batch) >= BATCH_FILES):
            yield big, batch
            batch, weight = [], 0
        batch.append((key, path))
        weight += size
        big = is_big
    if batch:
        yield big, batch


def run_batches(
    work: Callable[[list[tuple[str, str]]], T],
    items: Iterable[tuple[str, str, int]],
    *,
    workers: int,
    name: str = "musehub-work",
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> Iterator[T]:
    """Yield ``work(batch)`` for the batches of *items* ((key, path, size)), in the order of *items*.

    Batches of files of at least *parallel_min_bytes* run on *workers*
    threads, a bounded window ahead; the others run on the calling thread when
    their turn comes (0: every batch goes to a thread, for *work* that holds the
    GIL only briefly). *work* must be safe to run on several threads at once.
    """
    if workers <= 1:
        for _big, batch in _runs(items, parallel_min_bytes):
            yield work(batch)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending: deque[Future[T] | list[tuple[str, str]]] = deque()

        def done(entry: Future[T] | list[tuple[str, str]]) -> T:
            return entry.result() if isinstance(entry, Future) else work(entry)

        try:
            for big, batch in _runs(items, parallel_min_bytes):
                pending.append(pool.submit(work, batch) if big else batch)
                if len(pending) >= 2 * workers:  # bounded memory: at most this many batches held
                    yield done(pending.popleft())
            while pending:
                yield done(pending.popleft())
        finally:
            for entry in pending:
                if isinstance(entry, Future):
                    entry.cancel()


class Background(Generic[T]):
    """*fn* running on a daemon thread: a Ctrl-C or an error of the caller's never waits for it."""

    def __init__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> None:
        self._done = threading.Event()
        self._value: T  # set by run() before _done is, unless fn raised
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
                self._error = exc
            finally:
                self._done.set()

        threading.Thread(target=run, name="musehub-background", daemon=True).start()

    def result(self) -> T:
        """Wait for *fn*; return what it returned or raise what it raised."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def raise_if_failed(self) -> None:
        """Raise what *fn* raised if it already has; never wait."""
        if self._done.is_set() and self._error is not None:
            raise self._error
