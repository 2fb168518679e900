"""Object storage for mpacks (and legacy per-object blobs), over the ``mpacks`` storage alias.

:func:`get_backend` returns one cached :class:`MPackStore` per process: a
:class:`FileSystemMPackStore` over Django's FileSystemStorage (the embedded
default) or an :class:`S3MPackStore` over django-storages' S3Storage (S3 and
MinIO), which reuses the storage's boto3 client. Every storage request is
reported to the registered observers (tests count them, metrics export them).

Where each thing lies (keys and ``mpack://`` URIs) is decided in
:mod:`repos.storage.layout`; this module only moves bytes.

Every storage failure leaves this module as :class:`StorageUnavailable` (a 503
with Retry-After), whether a request was refused, timed out or broke off, and
including failures while *reading* a stream the store handed out: those streams
are :class:`StorageStream` objects that convert on read and close. A missing key
is not a failure: the methods that can find nothing say so (None or False).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.client
import io
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import reverse
from django.utils.module_loading import import_string

from musehub_core.errors import BadSignature, StorageUnavailable
from musehub_core.ids import is_id
from repos.storage.layout import (
    MPACKS,
    legacy_object_uri,
    mpack_id_of_name,
    mpack_name,
    object_name,
    staged_object_name,
    staging_name,
)

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

log = logging.getLogger("musehub.storage")
SIGNING_SALT = "musehub.storage-url"
# Ranges closer than this are read as one span; past MAX_SPANS the whole pack is streamed.
RANGE_MERGE_GAP = 256 * 1024
MAX_SPANS = 32


@dataclass(frozen=True)
class StorageOp:
    """One request made to object storage."""

    op: str
    key: str
    nbytes: int = 0


Observer = Callable[[StorageOp], None]


def coalesce_ranges(ranges: list[tuple[int, int]], gap: int = RANGE_MERGE_GAP) -> list[tuple[int, int]]:
    """Return (start, end) spans covering every (offset, length) range, merging near neighbours."""
    spans: list[tuple[int, int]] = []
    for offset, length in sorted(ranges):
        end = offset + length
        if spans and offset - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((offset, end))
    return spans


@functools.cache
def _storage_error_types() -> tuple[type[BaseException], ...]:
    """Return the exceptions that mean "object storage failed": refused, timed out, cut off, or an error reply.

    OSError (sockets, files), http.client's IncompleteRead, urllib3's ProtocolError
    and ReadTimeoutError, botocore's EndpointConnectionError, ConnectTimeoutError,
    ReadTimeoutError, IncompleteReadError, ResponseStreamingError and ClientError,
    and boto3's transfer errors (S3UploadFailedError wraps a SlowDown on PutObject).
    """
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError as URLLib3Error

    return (OSError, http.client.HTTPException, ClientError, BotoCoreError, Boto3Error, URLLib3Error)


def _client_error_code(exc: BaseException) -> str | None:
    """Return the S3 error code of *exc* or of the ClientError it wraps (boto3's transfers wrap them), else None."""
    from botocore.exceptions import ClientError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ClientError):
            error = current.response.get("Error", {})
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return str(error.get("Code") or status or "error")
        current = current.__cause__ or current.__context__
    return None


MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# What S3 answers a CopyObject whose source is over its 5 GiB limit for one request.
TOO_BIG_TO_COPY_AT_ONCE = frozenset({"InvalidRequest", "EntityTooLarge"})


def storage_unavailable(what: str, exc: BaseException) -> StorageUnavailable:
    """Return the StorageUnavailable that reports *exc*, raised while trying to *what*.

    The 503's sentence names the operation and the kind of failure only (no
    endpoint, key or path); the full cause is logged and kept in ``failure``
    for operators (maintenance commands print it).
    """
    code = _client_error_code(exc)
    reason = f"it answered {code}" if code else type(exc).__name__
    log.warning("object storage could not %s: %s: %s", what, type(exc).__name__, exc)
    error = StorageUnavailable(f"Object storage is unavailable: could not {what} ({reason}); retry shortly.")
    error.failure = f"could not {what} ({type(exc).__name__}: {exc})"
    return error


def failure_detail(exc: StorageUnavailable) -> str:
    """Return what failed and why, with the library's own words: for operators, not for HTTP replies."""
    return exc.failure or exc.message.rstrip(" .")


# What a store reads from: a file (Storage.open, open), botocore's StreamingBody (S3), or a _Span of a file.
RawStream = IO[bytes] | io.RawIOBase


class StorageStream:
    """A stream the store handed out; storage failing while it is read or closed raises StorageUnavailable.

    Storage can fail after an object's response began: the connection drops
    (IncompleteRead, ProtocolError, ResponseStreamingError), a read times out,
    MinIO restarts. Whoever reads the stream (``index_mpack`` during a push,
    the blob reader during a fetch, fsck, repack) then gets the hub's 503, never
    a library exception that would be a 500. Anything else is the wrapped stream's.
    """

    def __init__(self, raw: RawStream, errors: Callable[[], contextlib.AbstractContextManager[None]], size: int = 0):
        self.raw = raw
        self._errors = errors
        self.size = size

    def read(self, n: int | None = -1) -> bytes:
        with self._errors():  # read() with no size: all of it (botocore's StreamingBody takes None, not -1)
            return (self.raw.read(n) if n is not None and n >= 0 else self.raw.read()) or b""

    def readinto(self, buffer: Any) -> int:
        with self._errors():
            # typing.IO declares no readinto; every stream a store opens has it (files, botocore's StreamingBody).
            return self.raw.readinto(buffer)  # type: ignore[union-attr]

    def close(self) -> None:
        with self._errors():
            self.raw.close()

    def __enter__(self) -> StorageStream:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except StorageUnavailable:
            pass  # the error already on its way says more than this one

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(64 * 1024):
            yield chunk

    def __getattr__(self, name: str) -> Any:
        if name == "raw":
            raise AttributeError(name)
        return getattr(self.raw, name)


class _Span(io.RawIOBase):
    """At most *length* bytes of an open stream, from where it stands (a ranged read of a seekable file)."""

    def __init__(self, handle: IO[bytes], length: int) -> None:
        self._handle = handle
        self._left = length

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._handle.read(want) if want > 0 else b""
        self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._handle.close()
        finally:
            super().close()


class MPackStore:
    """The hub's view of object storage: whole packs, byte ranges, signed URLs, legacy objects."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._observers: list[Observer] = []
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Build now what the first storage call would build (no request is sent): run at a worker's start."""

    # --- observation --------------------------------------------------------
    def add_observer(self, observer: Observer) -> None:
        with self._lock:
            self._observers = [*self._observers, observer]

    def remove_observer(self, observer: Observer) -> None:
        with self._lock:
            self._observers = [o for o in self._observers if o != observer]

    def _report(self, op: str, key: str, nbytes: int = 0) -> None:
        event = StorageOp(op, key, nbytes)
        for observer in self._observers:
            observer(event)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn a storage failure into StorageUnavailable (a 503), never a 500; a missing key stays FileNotFoundError."""
        try:
            yield
        except (FileNotFoundError, StorageUnavailable):
            raise
        except _storage_error_types() as exc:
            raise storage_unavailable(what, exc) from exc

    def _stream(self, raw: RawStream, what: str, size: int) -> StorageStream:
        """Wrap a stream this store opened so that failures while reading it are StorageUnavailable too."""
        return StorageStream(raw, functools.partial(self._errors, what), size)

    # --- primitives every backend implements ----------------------------------
    def _exists(self, name: str) -> bool:
        return self.storage.exists(name)

    def _write(self, name: str, data: bytes | IO[bytes]) -> None:
        content = ContentFile(data) if isinstance(data, bytes) else File(data)
        self.storage.save(name, content)

    def _open(self, name: str) -> IO[bytes]:
        """Return a stream of the object *name*; raise FileNotFoundError when it is absent."""
        return self.storage.open(name, "rb")

    def _delete(self, name: str) -> None:
        """Delete the object *name* (nothing happens when it is absent)."""
        self.storage.delete(name)

    def _read_span(self, name: str, start: int, end: int) -> bytes:
        with self._open(name) as handle:
            handle.seek(start)
            return handle.read(end - start)

    def _open_span(self, name: str, start: int, end: int) -> RawStream:
        """Return a stream of bytes *start* to *end* (exclusive) of *name*; raise FileNotFoundError when absent."""
        handle = self._open(name)
        try:
            handle.seek(start)
        except BaseException:
            handle.close()
            raise
        return _Span(handle, end - start)

    def _move(self, source: str, target: str) -> None:
        with self._open(source) as handle:
            self._write(target, handle)
        self._delete(source)

    def _signed_url(self, name: str, method: str, ttl: int) -> str:
        raise NotImplementedError

    def _size(self, name: str) -> int:
        return self.storage.size(name)

    def _modified_time(self, name: str) -> dt.datetime:
        """Return when *name* was last written; raise FileNotFoundError when it is absent."""
        return self.storage.get_modified_time(name)

    # --- mpacks ---------------------------------------------------------------
    def put_mpack(self, mpack_id: str, data: bytes | IO[bytes]) -> None:
        """Store a pack under its content key."""
        name = mpack_name(mpack_id)
        with self._errors("store an mpack"):
            self._write(name, data)
        self._report("put_mpack", mpack_id, len(data) if isinstance(data, bytes) else 0)

    def get_mpack(self, mpack_id: str) -> bytes | None:
        """Return a whole pack's bytes, or None when it is not in storage."""
        stream = self.open_mpack(mpack_id, op="get_mpack")
        if stream is None:
            return None
        with stream:
            return stream.read()

    def open_mpack(self, mpack_id: str, *, op: str = "open_mpack") -> StorageStream | None:
        """Return a stream over a whole pack (one storage GET), or None when it is missing."""
        name = mpack_name(mpack_id)
        with self._errors("read an mpack"):
            try:
                stream = self._open(name)
            except FileNotFoundError:
                self._report(op, mpack_id, 0)
                return None
            size = self._size_of(stream)
        self._report(op, mpack_id, size)
        return self._stream(stream, "read an mpack", size)

    def _size_of(self, stream: IO[bytes]) -> int:
        return getattr(stream, "size", 0) or 0

    def read_ranges(self, mpack_id: str, ranges: list[tuple[int, int]]) -> dict[tuple[int, int], bytes] | None:
        """Return the bytes of each (offset, length) range of one pack, or None when the pack is missing.

        Nearby ranges are merged into spans, one ranged GET each.
        """
        name = mpack_name(mpack_id)
        out: dict[tuple[int, int], bytes] = {}
        pending = sorted(set(ranges))
        position = 0  # ranges and spans are both sorted: one pass over each
        with self._errors("read mpack ranges"):
            for start, end in coalesce_ranges(pending):
                try:
                    span = self._read_span(name, start, end)
                except FileNotFoundError:
                    self._report("get_range", mpack_id, 0)
                    return None
                self._report("get_range", mpack_id, len(span))
                while position < len(pending) and pending[position][0] + pending[position][1] <= end:
                    offset, length = pending[position]
                    out[(offset, length)] = span[offset - start : offset - start + length]
                    position += 1
        return out

    def open_mpack_range(self, mpack_id: str, offset: int, length: int) -> StorageStream | None:
        """Return a stream of *length* bytes of a pack from *offset*, or None when the pack is missing.

        One ranged GET whose body is read as the caller reads the stream (a
        download of a big blob): the bytes are never held whole.
        """
        name = mpack_name(mpack_id)
        with self._errors("read an mpack range"):
            try:
                stream = self._open_span(name, offset, offset + length) if length > 0 else io.BytesIO()
            except FileNotFoundError:
                self._report("get_range", mpack_id, 0)
                return None
        self._report("get_range", mpack_id, length)
        return self._stream(stream, "read an mpack range", length)

    def mpack_exists(self, mpack_id: str) -> bool:
        with self._errors("look up an mpack"):
            return self._exists(mpack_name(mpack_id))

    def mpack_modified_time(self, mpack_id: str) -> dt.datetime | None:
        """Return when the pack was written (aware), or None when it is not in storage (gc's grace period)."""
        with self._errors("look up an mpack"):
            try:
                stamp = self._modified_time(mpack_name(mpack_id))
            except FileNotFoundError:
                return None
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)

    def delete_mpack(self, mpack_id: str) -> None:
        with self._errors("delete an mpack"):
            self._delete(mpack_name(mpack_id))
        self._report("delete_mpack", mpack_id)

    def presign_mpack_get(self, mpack_id: str, ttl: int | None = None) -> str:
        """Return a URL that downloads the pack (and honours Range) until *ttl* seconds from now."""
        return self._signed_url(mpack_name(mpack_id), "GET", ttl or settings.MUSEHUB_URL_TTL_SECONDS)

    def list_mpacks(self) -> Iterator[str]:
        """Yield the key of every pack in storage (for gc and fsck)."""
        with self._errors("list mpacks"):
            for name in self._list(MPACKS):
                mpack_id = mpack_id_of_name(name)
                if mpack_id is not None:
                    yield mpack_id

    def _list(self, prefix: str) -> Iterator[str]:
        directories, files = self.storage.listdir(prefix.rstrip("/"))
        for directory in directories:
            yield from self._list(f"{prefix}{directory}/")
        for filename in files:
            yield f"{prefix}{filename}"

    # --- uploads (staging) ------------------------------------------------------
    def presign_upload_put(self, upload_id: str, ttl: int | None = None) -> str:
        """Return a URL that accepts one PUT of the pack bytes for *upload_id*."""
        return self._signed_url(staging_name(upload_id), "PUT", ttl or settings.MUSEHUB_URL_TTL_SECONDS)

    def put_upload(self, upload_id: str, data: bytes | IO[bytes]) -> None:
        with self._errors("store an upload"):
            self._write(staging_name(upload_id), data)
        self._report("put_upload", upload_id, len(data) if isinstance(data, bytes) else 0)

    def open_upload(self, upload_id: str) -> StorageStream | None:
        with self._errors("read an upload"):
            try:
                stream = self._open(staging_name(upload_id))
            except FileNotFoundError:
                return None
            size = self._size_of(stream)
        self._report("open_upload", upload_id, size)
        return self._stream(stream, "read an upload", size)

    def promote_upload(self, upload_id: str, mpack_id: str) -> None:
        """Move a verified upload to its content key (a server-side move; no bytes through the hub)."""
        with self._errors("store an uploaded mpack"):
            if self._exists(mpack_name(mpack_id)):
                self._delete(staging_name(upload_id))
            else:
                self._move(staging_name(upload_id), mpack_name(mpack_id))
        self._report("promote_upload", mpack_id)

    def presign_object_put(self, repo_id: str, object_id: str, ttl: int | None = None) -> str:
        """Return a URL that accepts one PUT of a blob's raw bytes for *repo_id* (MWP presign)."""
        return self._signed_url(staged_object_name(repo_id, object_id), "PUT", ttl or settings.MUSEHUB_URL_TTL_SECONDS)

    def open_staged_object(self, repo_id: str, object_id: str) -> tuple[StorageStream, int] | None:
        """Return (stream, size) of a staged blob, or None when it was never uploaded."""
        name = staged_object_name(repo_id, object_id)
        with self._errors("read a staged object"):
            try:
                stream = self._open(name)
            except FileNotFoundError:
                return None
            size = self._size_of(stream) or self._size(name)
        self._report("open_staged", object_id, size)
        return self._stream(stream, "read a staged object", size), size

    def delete_staged_object(self, repo_id: str, object_id: str) -> None:
        with self._errors("delete a staged object"):
            self._delete(staged_object_name(repo_id, object_id))

    def delete_upload(self, upload_id: str) -> None:
        with self._errors("delete an upload"):
            self._delete(staging_name(upload_id))

    # --- legacy per-object keys (read fallback and migration only) ---------------
    def put(self, object_id: str, data: bytes) -> str:
        name = object_name(object_id)
        with self._errors("store an object"):
            self._write(name, data)
        self._report("put", object_id, len(data))
        return legacy_object_uri(object_id)

    def get(self, object_id: str) -> bytes | None:
        name = object_name(object_id)
        with self._errors("read an object"):
            try:
                with self._open(name) as handle:
                    data = handle.read()
            except FileNotFoundError:
                self._report("get", object_id, 0)
                return None
        self._report("get", object_id, len(data))
        return data

    def exists(self, object_id: str) -> bool:
        with self._errors("look up an object"):
            return self._exists(object_name(object_id))

    def delete(self, object_id: str) -> None:
        with self._errors("delete an object"):
            self._delete(object_name(object_id))
        self._report("delete", object_id)

    def list_objects(self) -> Iterator[str]:
        with self._errors("list objects"):
            for name in self._list("objects/"):
                object_id = "sha256:" + name.rsplit("/", 1)[-1]
                if is_id(object_id):  # not a file being written (``.write-*.part``)
                    yield object_id

    # --- writes that never finished -----------------------------------------------
    def unfinished_writes(self, older_than: dt.datetime) -> list[str]:
        """Return the temporary files of writes a killed process left behind, last changed before *older_than*.

        Only the filesystem store writes through temporary files; S3 writes are whole or absent.
        """
        return []

    def delete_unfinished_write(self, name: str) -> None:
        """Delete one file :meth:`unfinished_writes` returned."""
        raise NotImplementedError

    # --- health -------------------------------------------------------------------
    def check(self) -> None:
        """Raise StorageUnavailable when storage cannot be reached."""
        with self._errors("answer"):
            self._exists("health-check")


_PARTIAL_PREFIX, _PARTIAL_SUFFIX = ".write-", ".part"  # a filesystem write in progress (see _write)


class FileSystemMPackStore(MPackStore):
    """Packs on the local filesystem; signed URLs point back at the hub (``wire.views``)."""

    storage: FileSystemStorage

    def _read_span(self, name: str, start: int, end: int) -> bytes:
        with open(self.storage.path(name), "rb") as handle:
            handle.seek(start)
            return handle.read(end - start)

    def _write(self, name: str, data: bytes | IO[bytes]) -> None:
        """Write a temporary file beside *name* and rename it over: a reader never sees a file half rewritten.

        (Django's storage, allowed to overwrite, truncates the file in place: a
        streamed fetch reading that pack meanwhile would read a short pack.)
        """
        target = self.storage.path(name)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_PARTIAL_PREFIX, suffix=_PARTIAL_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, 1024 * 1024)
            os.chmod(tmp, self.storage.file_permissions_mode or 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def unfinished_writes(self, older_than: dt.datetime) -> list[str]:
        root = self.storage.location
        found: list[str] = []
        with self._errors("list unfinished writes"):
            for folder, _dirs, files in os.walk(root):
                for filename in files:
                    if not (filename.startswith(_PARTIAL_PREFIX) and filename.endswith(_PARTIAL_SUFFIX)):
                        continue
                    path = os.path.join(folder, filename)
                    with contextlib.suppress(FileNotFoundError):  # finished (renamed) meanwhile
                        changed = dt.datetime.fromtimestamp(os.lstat(path).st_mtime, dt.UTC)
                        if changed <= older_than:
                            found.append(os.path.relpath(path, root))
        return sorted(found)

    def delete_unfinished_write(self, name: str) -> None:
        filename = os.path.basename(name)
        if not (filename.startswith(_PARTIAL_PREFIX) and filename.endswith(_PARTIAL_SUFFIX)):
            raise ValueError(f"{name} is not an unfinished write")
        with self._errors("delete an unfinished write"), contextlib.suppress(FileNotFoundError):
            os.unlink(self.storage.path(name))

    def _open(self, name: str) -> IO[bytes]:
        return open(self.storage.path(name), "rb")

    def _size_of(self, stream: IO[bytes]) -> int:
        return os.fstat(stream.fileno()).st_size

    def _move(self, source: str, target: str) -> None:
        target_path = self.storage.path(target)
        os.makedirs(os.path.dirname(target_path), exist_ok=True)
        shutil.move(self.storage.path(source), target_path)

    def _list(self, prefix: str) -> Iterator[str]:
        if not self.storage.exists(prefix.rstrip("/")):
            return iter(())
        return super()._list(prefix)

    def _signed_url(self, name: str, method: str, ttl: int) -> str:
        token = signing.dumps({"n": name, "m": method, "e": int(time.time()) + ttl}, salt=SIGNING_SALT)
        return reverse("storage-signed", kwargs={"token": token})

    def path_for(self, name: str) -> str:
        return self.storage.path(name)


def verify_signed_url(token: str, method: str) -> str:
    """Return the storage name a hub-signed URL grants *method* on; raise BadSignature otherwise."""
    try:
        claims = signing.loads(token, salt=SIGNING_SALT)
    except signing.BadSignature as exc:
        raise BadSignature() from exc
    if claims.get("m") != method:
        raise BadSignature(f"This storage URL does not allow {method}.")
    if int(claims.get("e", 0)) < time.time():
        raise BadSignature("This storage URL has expired; ask the hub for a new one.")
    return claims["n"]


class S3MPackStore(MPackStore):
    """Packs in S3 or MinIO through django-storages; ranged GETs and presigned URLs via its boto3 client."""

    storage: S3Storage  # django-storages ships no type information: its attributes are Any to the checker
    _shared_client = None

    def _client(self):
        """Return one boto3 client for the whole process (clients are thread-safe).

        django-storages builds a boto3 resource per thread, which costs 100-300 ms
        the first time each thread touches storage (every request, under a server
        that starts a thread per request); the client is made once and shared.
        """
        client = self._shared_client
        if client is None:
            with self._lock:
                if self._shared_client is None:
                    self._shared_client = self.storage.connection.meta.client
                client = self._shared_client
        return client

    def warm(self) -> None:
        """Build the shared boto3 client (loading botocore's S3 model: about 0.1 s, once per process)."""
        self._client()

    def _key(self, name: str) -> str:
        return self.storage._normalize_name(name)

    def _call(self, fn, **kwargs):
        """Call one S3 operation on the bucket; a missing key is FileNotFoundError (other failures: see _errors)."""
        from botocore.exceptions import ClientError

        try:
            return fn(Bucket=self.storage.bucket_name, **kwargs)
        except ClientError as exc:
            if _client_error_code(exc) in MISSING_CODES:
                raise FileNotFoundError(kwargs.get("Key", "")) from exc
            raise

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """As MPackStore._errors, and an S3 "no such key" reply that reaches here is FileNotFoundError.

        Everything else S3 can answer (SlowDown, InternalError, NoSuchBucket,
        AccessDenied, ...) and every transport failure (refused, timed out, cut
        off) is StorageUnavailable.
        """
        from botocore.exceptions import ClientError

        try:
            yield
        except (FileNotFoundError, StorageUnavailable):
            raise
        except ClientError as exc:
            if _client_error_code(exc) in MISSING_CODES:
                raise FileNotFoundError(str(exc)) from exc
            raise storage_unavailable(what, exc) from exc
        except _storage_error_types() as exc:
            raise storage_unavailable(what, exc) from exc

    def _open(self, name: str) -> IO[bytes]:
        response = self._call(self._client().get_object, Key=self._key(name))
        body = response["Body"]
        body.size = response.get("ContentLength", 0)
        return body

    def _write(self, name: str, data: bytes | IO[bytes]) -> None:
        if isinstance(data, bytes):
            # One PUT on the shared client: django-storages' save goes through boto3's managed transfer,
            # which starts a thread pool per call (about 0.1 s for a pack of a few KiB).
            self._call(
                self._client().put_object, Key=self._key(name), Body=data, ContentType="application/octet-stream"
            )
            return
        super()._write(name, data)

    def _delete(self, name: str) -> None:
        # The shared client: django-storages' own delete builds a boto3 resource for each new thread.
        self._call(self._client().delete_object, Key=self._key(name))

    def _exists(self, name: str) -> bool:
        try:
            self._call(self._client().head_object, Key=self._key(name))
        except FileNotFoundError:
            return False
        return True

    def _size(self, name: str) -> int:
        return self._call(self._client().head_object, Key=self._key(name))["ContentLength"]

    def _modified_time(self, name: str) -> dt.datetime:
        return self._call(self._client().head_object, Key=self._key(name))["LastModified"]

    def _read_span(self, name: str, start: int, end: int) -> bytes:
        response = self._call(self._client().get_object, Key=self._key(name), Range=f"bytes={start}-{end - 1}")
        return response["Body"].read()

    def _open_span(self, name: str, start: int, end: int) -> RawStream:
        response = self._call(self._client().get_object, Key=self._key(name), Range=f"bytes={start}-{end - 1}")
        return response["Body"]

    def _move(self, source: str, target: str) -> None:
        """Copy *source* to *target* inside the bucket, then delete *source*.

        One CopyObject request where S3 takes one (up to 5 GiB): boto3's managed
        copy splits anything over 8 MiB into 8 MiB part copies, and moving a
        64 MiB pack took 2.5 times as long that way. Bigger sources, which S3
        refuses to copy in one request, take the managed copy.
        """
        from botocore.exceptions import ClientError

        bucket = self.storage.bucket_name
        copy_source = {"Bucket": bucket, "Key": self._key(source)}
        try:
            self._call(self._client().copy_object, CopySource=copy_source, Key=self._key(target))
        except ClientError as exc:
            if _client_error_code(exc) not in TOO_BIG_TO_COPY_AT_ONCE:
                raise
            try:
                self._client().copy(copy_source, bucket, self._key(target))
            except Exception as exc:  # boto3's managed copy wraps ClientError differently per size
                if "404" in str(exc) or "NoSuchKey" in str(exc):
                    raise FileNotFoundError(source) from exc
                raise
        self._delete(source)

    def _list(self, prefix: str) -> Iterator[str]:
        paginator = self._client().get_paginator("list_objects_v2")
        location = self.storage.location.strip("/")
        strip = len(location) + 1 if location else 0
        for page in paginator.paginate(Bucket=self.storage.bucket_name, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                yield item["Key"][strip:]

    def _signed_url(self, name: str, method: str, ttl: int) -> str:
        operation = "get_object" if method == "GET" else "put_object"
        return self._signing_client().generate_presigned_url(
            operation, Params={"Bucket": self.storage.bucket_name, "Key": self._key(name)}, ExpiresIn=ttl
        )

    def _signing_client(self):
        """Return the client that signs URLs: one for MUSEHUB_S3_PUBLIC_ENDPOINT_URL when clients use another address."""
        public = getattr(settings, "MUSEHUB_S3_PUBLIC_ENDPOINT_URL", "")
        if not public:
            return self._client()
        endpoint, client = getattr(self, "_public_client", ("", None))
        if endpoint != public:
            # Signing is local computation: this client never opens a connection.
            client = self.storage._create_session().client(
                "s3",
                region_name=self.storage.region_name,
                endpoint_url=public,
                config=self.storage.client_config,
                verify=self.storage.verify,
            )
            self._public_client = (public, client)
        return client

    def check(self) -> None:
        with self._errors("answer"):
            try:
                self._call(self._client().head_bucket)
            except FileNotFoundError as exc:  # HEAD on a missing bucket answers a bare 404
                raise storage_unavailable("find the bucket", exc) from exc


@functools.cache
def get_backend() -> MPackStore:
    """Return the process-wide store over the ``mpacks`` storage alias."""
    storage = storages["mpacks"]
    store = FileSystemMPackStore(storage) if isinstance(storage, FileSystemStorage) else S3MPackStore(storage)
    for path in getattr(settings, "MUSEHUB_STORAGE_OBSERVERS", ()):  # metrics
        store.add_observer(import_string(path))
    return store


@receiver(setting_changed)
def _reset_backend(*, setting: str, **kwargs) -> None:
    if setting == "STORAGES":
        get_backend.cache_clear()


@contextlib.contextmanager
def record_storage_ops() -> Iterator[list[StorageOp]]:
    """Collect every storage request made while the block runs (tests and benchmarks)."""
    calls: list[StorageOp] = []
    backend = get_backend()
    backend.add_observer(calls.append)
    try:
        yield calls
    finally:
        backend.remove_observer(calls.append)
