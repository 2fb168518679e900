"""Write packs: the one place that builds an mpack into storage and records its ``MPack`` and index rows.

Server-side commits, merges and MWP uploads store their blobs with
:func:`pack_blobs`; maintenance (repack, legacy migration) collects blobs in a
:class:`PackBuilder`. Every pack row goes through :func:`record_mpack` and every
byte-range index row through :func:`record_index`.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from musehub_core.mpack import MPackWriter, encode_blob
from repos.bulk import insert_ignore
from repos.models import MPack, MPackIndex, MPackKind
from repos.storage.backend import StorageStream, get_backend

SPOOL_BYTES = 16 * 1024 * 1024

Opener = Callable[[], tuple[StorageStream, int]]


class StoredBlob(NamedTuple):
    """A blob written into a pack: where its bytes are and (if small) the raw bytes themselves.

    A tuple: a push makes one per blob (a frozen dataclass cost 0.1 s for 25,000).
    """

    object_id: str
    size: int
    offset: int | None
    length: int | None
    encoding: str = ""
    content: bytes | None = None


def record_mpack(mpack: MPack, *, repo_id: str | None) -> None:
    """Insert the row of a pack already in storage (idempotent)."""
    insert_ignore(
        MPack,
        ["mpack_id", "kind", "repo", "size_bytes", "commit_count", "snapshot_count", "blob_count", "created_at"],
        [
            (
                mpack.mpack_id,
                mpack.kind,
                repo_id,
                mpack.size_bytes,
                mpack.commit_count,
                mpack.snapshot_count,
                mpack.blob_count,
                mpack.created_at or dt.datetime.now(dt.UTC),
            )
        ],
    )


def record_index(mpack_id: str, blobs: Iterable[StoredBlob]) -> None:
    """Insert the byte-range index rows saying where each of *blobs* lies in pack *mpack_id* (idempotent)."""
    now = dt.datetime.now(dt.UTC)
    insert_ignore(
        MPackIndex,
        ["entity_id", "mpack_id", "entity_type", "offset", "length", "encoding", "created_at"],
        ((b.object_id, mpack_id, "object", b.offset, b.length, b.encoding, now) for b in blobs),
    )


def new_mpack_row(mpack_id: str, *, kind: str, size: int, blobs: int, commits: int = 0, snapshots: int = 0) -> MPack:
    """Return an unsaved ``MPack`` row for a pack just written."""
    return MPack(
        mpack_id=mpack_id,
        kind=kind,
        size_bytes=size,
        commit_count=commits,
        snapshot_count=snapshots,
        blob_count=blobs,
        created_at=dt.datetime.now(dt.UTC),
    )


def store_pack(write: Callable[[MPackWriter], tuple[str, int]], *, reuse: bool = False) -> tuple[str, int]:
    """Spool the pack *write* writes (it returns ``writer.finish(...)``), store it under its key; return (id, size).

    With *reuse*, a pack already in storage under that key is not written again.
    """
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        mpack_id, size = write(MPackWriter(spool))
        backend = get_backend()
        if not (reuse and backend.mpack_exists(mpack_id)):
            spool.seek(0)
            backend.put_mpack(mpack_id, spool)
    return mpack_id, size


def record_fetch_pack(mpack_id: str, *, repo_id: str, size: int, commits: int, snapshots: int, blobs: int) -> None:
    """Record a fetch pack; one handed out again restarts musehub_gc's grace period for it."""
    _, created = MPack.objects.get_or_create(
        mpack_id=mpack_id,
        defaults={
            "kind": MPackKind.FETCH,
            "repo_id": repo_id,
            "size_bytes": size,
            "commit_count": commits,
            "snapshot_count": snapshots,
            "blob_count": blobs,
        },
    )
    if not created:
        MPack.objects.filter(mpack_id=mpack_id).update(created_at=dt.datetime.now(dt.UTC))


def pack_blobs(
    blobs: Mapping[str, bytes],
    *,
    streamed: Sequence[tuple[str, Opener]] = (),
    kind: str = MPackKind.SERVER,
) -> tuple[MPack | None, list[StoredBlob]]:
    """Store *blobs* ({object_id: raw bytes}, ids already verified) and *streamed* blobs as one new mpack.

    *streamed* holds (object_id, opener) pairs for blobs too big to hold in
    memory: each opener returns (stream, size) and the bytes are copied raw and
    verified against the id while they are written (MalformedPack otherwise).
    Returns the unsaved MPack row (for ``write_history``) and where each blob
    lies in it; (None, []) when there is nothing to store. In-memory blobs are
    zstd-encoded where that pays.
    """
    if not blobs and not streamed:
        return None, []
    stored: list[StoredBlob] = []

    def write(writer: MPackWriter) -> tuple[str, int]:
        writer.write_commits([])
        writer.write_snapshots([])
        writer.begin_blobs(len(blobs) + len(streamed))
        for oid, raw in sorted(blobs.items()):
            content, encoding = encode_blob(raw)
            offset = writer.write_blob(oid, content, encoding)
            stored.append(StoredBlob(oid, len(raw), offset, len(content), encoding, raw))
        for oid, opener in streamed:
            stream, size = opener()
            with stream:
                offset = writer.write_blob_stream(oid, stream, size)
            stored.append(StoredBlob(oid, size, offset, size, "", None))
        return writer.finish({})

    mpack_id, size = store_pack(write)
    return new_mpack_row(mpack_id, kind=kind, size=size, blobs=len(stored)), stored


class PackBuilder:
    """Collect blobs as stored (bytes plus encoding), then write them as one new mpack sorted by id.

    Blobs are spooled to a temporary file as they arrive (so the count the
    pack's header needs is known before writing it, and a blob that fails
    verification can simply be left out); :meth:`write` streams them into the
    pack and stores it. Use as a context manager.
    """

    def __init__(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by close())
        self._items: dict[str, tuple[int, str, int, int]] = {}  # oid -> (raw size, encoding, start, length)
        self.stored_bytes = 0

    def __enter__(self) -> PackBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spool.close()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, object_id: str) -> bool:
        return object_id in self._items

    def add(self, object_id: str, stored: bytes, encoding: str, size: int) -> None:
        """Add one blob: *stored* bytes in *encoding* ('' or 'zstd') that decode to *size* raw bytes."""
        if object_id in self._items:
            return
        self._spool.seek(0, 2)
        start = self._spool.tell()
        self._spool.write(stored)
        self._items[object_id] = (size, encoding, start, len(stored))
        self.stored_bytes += len(stored)

    def write(self) -> tuple[str, int, list[StoredBlob]]:
        """Write and store the pack; return (mpack id, size in bytes, where each blob lies)."""
        blobs: list[StoredBlob] = []

        def write(writer: MPackWriter) -> tuple[str, int]:
            writer.write_commits([])
            writer.write_snapshots([])
            writer.begin_blobs(len(self._items))
            for oid, (size, encoding, start, length) in sorted(self._items.items()):
                self._spool.seek(start)
                offset = writer.write_blob(oid, self._spool.read(length), encoding)
                blobs.append(StoredBlob(oid, size, offset, length, encoding))
            return writer.finish({})

        mpack_id, total = store_pack(write)
        return mpack_id, total, blobs
