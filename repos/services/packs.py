"""Write blobs the hub itself receives or creates (server-side commits, MWP uploads) into a new mpack."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from musehub_core.mpack import MPackWriter, encode_blob
from repos.models import MPack, MPackKind
from repos.services.history import StoredBlob
from wire.storage import get_backend

_SPOOL_BYTES = 16 * 1024 * 1024

Opener = Callable[[], tuple[IO[bytes], int]]


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
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        writer = MPackWriter(spool)
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
        mpack_id, size = writer.finish({})
        spool.seek(0)
        get_backend().put_mpack(mpack_id, spool)
    mpack = MPack(
        mpack_id=mpack_id,
        kind=kind,
        size_bytes=size,
        blob_count=len(stored),
        created_at=dt.datetime.now(dt.UTC),
    )
    return mpack, stored
