"""Reading a batch of a tree's files whole, at once in C without the GIL.

A push reads each file it sends twice (to hash it in the scan, then to pack
it). For a small file the Python around each read (a path object, an open, two
reads, a close) cost more than the read; :func:`read_files` reads a whole batch
in :mod:`musehub_client._scan` with the GIL released, so a thread can read the
next batch while another compresses this one. Without the C module it reads
the same way in Python.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

try:  # the C walk, reads and writes; pure Python where it was not built (no compiler, not POSIX)
    from musehub_client import _scan as native
except ImportError:  # pragma: no cover - the Makefile builds it
    native = None  # type: ignore[assignment]  # a module or None: callers test for None


def read_files(root: str, relatives: Sequence[str], *, use_native: bool = True) -> list[bytes | OSError]:
    """Return the content of each regular file *root*/relative, or the OSError that stopped its read.

    A path where a symlink or anything but a regular file now stands reads as
    an error (the walk saw a regular file there). With the C module the batch
    is read with the GIL released.
    """
    if use_native and native is not None:
        return [
            _error(value, root, relative) if isinstance(value, int) else value
            for value, relative in zip(native.read_files(root, relatives), relatives, strict=True)
        ]
    return [_read_regular(root, relative) for relative in relatives]


# No symlink followed and no wait on a pipe put where the walk saw a regular file.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _read_regular(root: str, relative: str) -> bytes | OSError:
    path = f"{root}{os.sep}{relative}"
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        return exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return _error(errno.EINVAL, root, relative)  # as the C reader says it
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _error(number: int, root: str, relative: str) -> OSError:
    return OSError(number, os.strerror(number), f"{root}{os.sep}{relative}")
