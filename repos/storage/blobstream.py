"""Stream one blob for a download in bounded chunks, verified against its id as it goes.

The REST ``raw/`` route reads a file's bytes through :func:`open_download`: at
most :data:`CHUNK` decoded bytes (plus, for a zstd entry, the window its frame
declares) are held at a time whatever the blob's size, so concurrent downloads
of a 400 MiB file cost a worker a few MiB each, not the file.

Where the bytes come from is decided before the first byte goes out, as
:mod:`repos.storage.reader` decides it: the content-cache row (small blobs,
checked whole), else each pack whose index entry gives the blob's byte range,
read by one ranged GET as the reply is sent (a zstd entry is decompressed as a
stream); a pack missing from storage falls back to the next one. Storage that
fails before the first byte is StorageUnavailable (a JSON 503); after it, the
reply is cut.

Verification. A whole download is hashed as it streams, and its last chunk is
held back until the bytes hash to the object id and add up to the size the push
recorded. On a mismatch (or a zstd entry that does not decode) the stream logs
an error, marks the pack damaged (``MPack.damaged_at``) and raises
IntegrityError instead of sending that chunk: the reply stops short of its
Content-Length and the server cuts the connection, so no client takes the bytes
for the file. A blob that fits in one chunk is checked before the reply starts
and falls back to another copy like any other read. A copy in a pack already
marked damaged is checked before its first byte is sent (read twice: once to
hash, once to send), so a retry after a cut takes another copy, or answers
IntegrityError (500) before the first byte when none is good.

A byte range (:meth:`BlobDownload.range_chunks`, for ``Range:`` requests) is
read from the copy a whole download would use, and only as far as it needs: an
uncompressed entry by one ranged GET of exactly those bytes, a zstd entry
decompressed from its start with the bytes before the range discarded chunk by
chunk. A range cannot be checked against the object id (that takes every byte
of the blob), so it is sent as stored: the push verified it, and
``musehub_fsck`` checks packs.

Index rows without a byte range (packs indexed before ranges were recorded)
and legacy per-object keys are read whole by :func:`repos.storage.reader.read_blob`,
as before; ``musehub_migrate_legacy`` moves such blobs into indexed packs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Generator, Iterator
from typing import NamedTuple

import zstandard

from musehub_core.errors import IntegrityError
from musehub_core.ids import PREFIX, blob_id
from musehub_core.mpack import Readable, zstd_decompressor
from repos.models import MPack, MPackIndex, Object
from repos.storage.backend import StorageStream, get_backend
from repos.storage.reader import _damaged, read_blob

log = logging.getLogger("musehub.blobs")

CHUNK = 256 * 1024  # decoded bytes per chunk handed to the server
EMPTY_ID = blob_id(b"")


class _Undecodable(Exception):
    """A stored entry that does not decode (a bad zstd frame, an unknown encoding)."""


class _Copy(NamedTuple):
    """One pack's copy of the blob: where its stored bytes lie and how they are encoded."""

    mpack_id: str
    offset: int
    length: int
    encoding: str
    damaged: bool


def _read_full(stream: Readable, size: int) -> bytes:
    """Read up to *size* bytes, fewer only at the end of *stream* (a decompressor may return less per call)."""
    data = stream.read(size)
    if len(data) in (0, size):
        return data
    parts = [data]
    got = len(data)
    while got < size and (more := stream.read(size - got)):
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _decoded(stream: StorageStream, encoding: str) -> Generator[bytes, None, None]:
    """Yield the decoded bytes of a stored entry read from *stream*, CHUNK at a time."""
    if encoding == "":
        while chunk := _read_full(stream, CHUNK):
            yield chunk
        return
    if encoding != "zstd":
        raise _Undecodable(f"unknown encoding {encoding!r}")
    try:
        # zstandard only calls read(); its stubs ask for an IO.
        with zstd_decompressor().stream_reader(stream, closefd=False) as reader:  # type: ignore[arg-type]
            while chunk := _read_full(reader, CHUNK):
                yield chunk
    except zstandard.ZstdError as exc:
        raise _Undecodable(str(exc)) from exc


class BlobChunks:
    """A blob's chunks, the first one read before the reply starts; close() closes the storage stream."""

    def __init__(self, first: bytes, rest: Iterator[bytes]) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def __iter__(self) -> BlobChunks:
        return self

    def peek(self) -> bytes:
        """Return the first chunk without taking it (b"" once iteration began)."""
        return self._first or b""

    def __next__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return next(self._rest)

    def close(self) -> None:
        close = getattr(self._rest, "close", None)
        if close is not None:
            close()


class BlobDownload:
    """One blob to send: its size (None when no row records it) and its bytes, whole or by range."""

    def __init__(self, object_id: str, size: int | None, held: bytes | None, copies: list[_Copy]) -> None:
        self.object_id = object_id
        self.size = size
        self._held = held
        self._copies = copies

    # --- what the view calls ---------------------------------------------------------------
    def chunks(self) -> BlobChunks:
        """Return the whole blob as chunks, hashed as they go (see the module docstring); the first is read now."""
        return self._start(self._verified, self._held_chunks)

    def range_chunks(self, start: int, end: int) -> BlobChunks:
        """Return bytes *start* to *end* (inclusive) of the blob as chunks, as stored; the first is read now."""
        return self._start(lambda copy: self._ranged(copy, start, end), lambda: self._held_chunks(start, end + 1))

    # --- choosing a copy -------------------------------------------------------------------
    def _start(self, reader: Callable[[_Copy], Iterator[bytes]], held: Callable[[], Iterator[bytes]]) -> BlobChunks:
        if self._held is None:
            for copy in self._copies:
                if copy.damaged and not self._hashes_right(copy):
                    log.warning("mpack %s is marked damaged and its copy of %s is wrong", copy.mpack_id, self.object_id)
                    continue
                chunks = reader(copy)
                try:
                    first = next(chunks)
                except FileNotFoundError:
                    log.warning("mpack %s is missing from storage; reading %s elsewhere", copy.mpack_id, self.object_id)
                    continue
                except IntegrityError:
                    continue  # found before the first byte (logged, pack marked damaged): try another copy
                return BlobChunks(first, chunks)
            # No ranged copy: the reader's fallbacks (unranged index rows, legacy keys), whole, verified.
            self._held = read_blob(self.object_id)
            self.size = len(self._held)
        chunks = held()
        return BlobChunks(next(chunks, b""), chunks)

    def _held_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        data = memoryview(self._held or b"")[start:stop]
        for position in range(0, len(data), CHUNK):
            yield bytes(data[position : position + CHUNK])

    def _open(self, copy: _Copy, offset: int, length: int) -> StorageStream:
        stream = get_backend().open_mpack_range(copy.mpack_id, offset, length)
        if stream is None:
            raise FileNotFoundError(copy.mpack_id)
        return stream

    def _hashes_right(self, copy: _Copy) -> bool:
        """Return True when *copy* decodes and hashes to the object id (read once, CHUNK at a time, nothing sent)."""
        digest = hashlib.sha256()
        count = 0
        try:
            with self._open(copy, copy.offset, copy.length) as stream:
                for chunk in _decoded(stream, copy.encoding):
                    count += len(chunk)
                    if self.size is not None and count > self.size:
                        return False
                    digest.update(chunk)
        except (FileNotFoundError, _Undecodable):
            return False
        return (self.size is None or count == self.size) and PREFIX + digest.hexdigest() == self.object_id

    # --- reading -----------------------------------------------------------------------------
    def _verified(self, copy: _Copy) -> Iterator[bytes]:
        """Yield the whole blob from *copy*, holding the last chunk back until it proved right (else raise)."""
        digest = hashlib.sha256()
        count = 0
        pending: bytes | None = None
        with self._open(copy, copy.offset, copy.length) as stream:
            try:
                for chunk in _decoded(stream, copy.encoding):
                    count += len(chunk)
                    if self.size is not None and count > self.size:
                        raise self._cut(copy, count, "holds more bytes than were pushed")
                    digest.update(chunk)
                    if pending is not None:
                        yield pending
                    pending = chunk
            except _Undecodable as exc:
                raise self._cut(copy, count, f"does not decode ({exc})") from exc
        if self.size is not None and count != self.size:
            raise self._cut(copy, count, f"holds {count} bytes, not {self.size}")
        if PREFIX + digest.hexdigest() != self.object_id:
            raise self._cut(copy, count, "does not hash to its id")
        yield pending if pending is not None else b""

    def _ranged(self, copy: _Copy, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes *start* to *end* (inclusive) of the blob from *copy*, as stored (not verifiable)."""
        want = end - start + 1
        sent = 0
        if copy.encoding == "":
            if start + want > copy.length:
                raise self._cut(copy, 0, "is shorter than the range asked for")
            with self._open(copy, copy.offset + start, want) as stream:
                while chunk := _read_full(stream, min(CHUNK, want - sent)):
                    sent += len(chunk)
                    yield chunk
        else:
            with self._open(copy, copy.offset, copy.length) as stream:
                skipped = 0
                decoded = _decoded(stream, copy.encoding)
                try:
                    for chunk in decoded:
                        if skipped + len(chunk) <= start:  # wholly before the range: decoded and dropped
                            skipped += len(chunk)
                            continue
                        piece = chunk[max(start - skipped, 0) :][: want - sent]
                        skipped += len(chunk)
                        sent += len(piece)
                        yield piece
                        if sent == want:
                            break
                except _Undecodable as exc:
                    raise self._cut(copy, sent, f"does not decode ({exc})") from exc
                finally:
                    decoded.close()
        if sent != want:
            raise self._cut(copy, sent, "ended before the range did")

    def _cut(self, copy: _Copy, count: int, how: str) -> IntegrityError:
        """Log and record a wrong copy; return the error that stops the reply (before or instead of its last chunk)."""
        log.error(
            "download of %s from mpack %s stopped after %d bytes: the copy %s",
            self.object_id,
            copy.mpack_id,
            count,
            how,
        )
        return _damaged(copy.mpack_id, f"holds a copy of {self.object_id} that {how}")


def open_download(object_id: str) -> BlobDownload:
    """Return the download of one blob: its size and where its bytes lie (database queries only, no storage read)."""
    row = Object.objects.filter(object_id=object_id).values_list("size_bytes", "content_cache").first()
    size: int | None = None
    held: bytes | None = None
    if row is not None:
        size_bytes, content = row
        size = size_bytes if size_bytes > 0 or object_id == EMPTY_ID else None
        if content is not None:
            if blob_id(bytes(content)) == object_id:
                held = bytes(content)
                size = len(held)
            else:
                log.warning("content_cache of %s is wrong; falling back to its mpack", object_id)
    copies: list[_Copy] = []
    if held is None:
        rows = list(
            MPackIndex.objects.filter(entity_id=object_id, offset__isnull=False, length__isnull=False).values_list(
                "mpack_id", "offset", "length", "encoding"
            )
        )
        damaged = set(
            MPack.objects.filter(mpack_id__in=[r[0] for r in rows], damaged_at__isnull=False).values_list(
                "mpack_id", flat=True
            )
        )
        copies = sorted(
            (
                _Copy(mpack_id, offset, length, encoding or "", mpack_id in damaged)
                for mpack_id, offset, length, encoding in rows
                if offset is not None and length is not None  # as the query asked
            ),
            key=lambda c: (c.damaged, c.mpack_id),
        )
    return BlobDownload(object_id, size, held, copies)
