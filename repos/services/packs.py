"""Write blobs the hub itself creates (server-side commits, MWP uploads) into a new mpack."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping

from repos.models import MPack, MPackKind
from repos.services.history import StoredBlob
from wire.mpack import MPackWriter, encode_blob
from wire.storage import get_backend

_SPOOL_BYTES = 16 * 1024 * 1024


def pack_blobs(blobs: Mapping[str, bytes], *, kind: str = MPackKind.SERVER) -> tuple[MPack | None, list[StoredBlob]]:
    """Store *blobs* ({object_id: raw bytes}, ids already verified) as one new mpack.

    Returns the unsaved MPack row (for ``write_history``) and where each blob
    lies in it; (None, []) when there is nothing to store. Blobs are zstd-encoded
    where that pays.
    """
    if not blobs:
        return None, []
    stored: list[StoredBlob] = []
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        writer = MPackWriter(spool)
        writer.write_commits([])
        writer.write_snapshots([])
        writer.begin_blobs(len(blobs))
        for oid, raw in sorted(blobs.items()):
            content, encoding = encode_blob(raw)
            offset = writer.write_blob(oid, content, encoding)
            stored.append(StoredBlob(oid, len(raw), offset, len(content), encoding, raw))
        mpack_id, size = writer.finish({})
        spool.seek(0)
        get_backend().put_mpack(mpack_id, spool)
    mpack = MPack(
        mpack_id=mpack_id, kind=kind, size_bytes=size, blob_count=len(stored), created_at=dt.datetime.now(dt.UTC)
    )
    return mpack, stored
