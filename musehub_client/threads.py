"""Work on several threads: how many, and in which batches.

Hashing (hashlib), compressing (zstandard) and reading files release the GIL,
so a thread pool uses every core for the scan and the push pack. Work is handed
out in batches (by bytes and by count) so small files do not cost a task each.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

THREADS_ENV = "MUSEHUB_CLIENT_THREADS"
MAX_THREADS = 16
BATCH_BYTES = 4 * 1024 * 1024
BATCH_FILES = 256


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
