"""Native fetch: the domain's selection (``repos.services.fetch``) handed over as one fetch mpack.

Blob bytes come through ``repos.storage.reader`` (cache, then each covering
pack read once, every blob checked against its id). Two ways to hand the pack over:

- by default (seed FN-7) the pack carries raw blob bytes; the domain spools it,
  stores it under its content key and records it
  (``repos.services.fetch.build_fetch_mpack``), and it is handed out by URL;
- with the ``pack-stream`` capability the pack is the reply itself, written as
  it is read: blobs keep the encoding they were stored with (no decode and
  re-encode, no copy in storage, one read of each byte), so a clone downloads
  about what the push uploaded and storage does not grow by a pack per head.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hubhttp.instruments import note_transfer, transfer
from musehub_core.errors import BadRequest
from musehub_core.mpack import MPackWriter
from musehub_core.protocol import SNAPSHOT_DELTA
from repos.models import Repo
from repos.selectors import branch_heads
from repos.services.fetch import (
    MAX_HAVE_IDS,
    FetchSet,
    build_fetch_mpack,
    check_ids,
    select_fetch,
)
from repos.storage.backend import get_backend
from repos.storage.reader import BlobPlan, plan_blob_reads, serve_blobs

log = logging.getLogger("musehub.fetch")
# A streamed reply is handed to the server in pieces of about this size.
STREAM_CHUNK = 1024 * 1024


def _select(repo: Repo, want: list[str], have: list[str], capabilities: Sequence[str]) -> tuple[FetchSet, BlobPlan]:
    """Check the request and return what to send: the selection, and where each blob is read."""
    note_transfer(repo=repo.full_name)
    want_ids = check_ids(want, "want")
    have_ids = check_ids(have, "have", MAX_HAVE_IDS)
    if not isinstance(capabilities, (list, tuple)) or not all(isinstance(c, str) for c in capabilities):
        raise BadRequest("capabilities must be a list of names.")
    selection = select_fetch(repo, want=want_ids, have=have_ids, deltas=SNAPSHOT_DELTA in capabilities)
    return selection, plan_blob_reads(selection.blob_ids)


def _counts(selection: FetchSet, plan: BlobPlan) -> dict[str, int]:
    return {
        "commit_count": len(selection.commits),
        "snapshot_count": len(selection.snapshots),
        "blob_count": plan.count,
    }


@transfer("fetch", "mpack", "musehub.fetch")
def wire_fetch_mpack(
    repo: Repo, *, want: list[str], have: list[str], capabilities: Sequence[str] = ()
) -> dict[str, Any]:
    """Build the fetch pack taking a client from *have* to *want* and return where to download it.

    With ``snapshot-delta`` in *capabilities* snapshots travel as deltas (docs/wire.md §2.1).

    Returns ``{mpack_id, mpack_url, commit_count, snapshot_count, blob_count, size}``.
    Raises BadRequest (bad ids), RefNotFound (a want the repo lacks) and
    FetchNotIndexedError (a needed blob is not yet indexed: retry).
    """
    selection, plan = _select(repo, want, have, capabilities)
    mpack_id, size = build_fetch_mpack(repo, selection, plan)
    note_transfer(pack=mpack_id, commits=len(selection.commits), blobs=plan.count, bytes=size)
    return {
        "mpack_id": mpack_id,
        "mpack_url": get_backend().presign_mpack_get(mpack_id),
        **_counts(selection, plan),
        "size": size,
    }


@dataclass
class FetchStream:
    """A fetch reply sent as it is written: the counts (for headers) and the pack's bytes in pieces."""

    counts: dict[str, int]
    chunks: Iterator[bytes]


class _Pieces:
    """The write end an MPackWriter fills and the reply drains."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return data


@transfer("fetch", "mpack-stream", "musehub.fetch")
def stream_fetch_mpack(
    repo: Repo, *, want: list[str], have: list[str], capabilities: Sequence[str] = ()
) -> FetchStream:
    """Return the fetch pack taking a client from *have* to *want* as a stream (the ``pack-stream`` capability).

    Everything that can refuse the fetch (bad ids, an unknown want, a blob not
    yet indexed) is checked before the first byte. Blobs keep their stored
    encoding; nothing is written to storage. The first blob is read before the
    reply starts (storage that is down is a 503 like any other); a storage failure
    after that cuts the reply short, which the client sees as an incomplete pack and retries.
    """
    selection, plan = _select(repo, want, have, capabilities)
    heads = branch_heads(repo)
    note_transfer(commits=len(selection.commits), blobs=plan.count, streamed=True)
    # The first blob is read before the reply starts, so storage that is down is a JSON 503, not a cut reply.
    blobs = serve_blobs(plan)
    first = next(blobs, None)

    def chunks() -> Iterator[bytes]:
        pieces = _Pieces()
        writer = MPackWriter(pieces, hashing=False)  # type: ignore[arg-type]
        writer.write_commits(selection.commits)
        writer.write_snapshots(selection.snapshots)
        writer.begin_blobs(plan.count)
        yield pieces.drain()
        try:
            for blob in itertools.chain([first] if first else [], blobs):
                writer.write_blob(blob.object_id, blob.stored, blob.encoding)
                if pieces.size >= STREAM_CHUNK:
                    yield pieces.drain()
        except Exception:
            log.exception("fetch stream of %s cut short after %d bytes", repo.full_name, writer.size)
            raise
        writer.finish(heads)
        yield pieces.drain()
        log.info("fetch stream of %s sent %d bytes", repo.full_name, writer.size)

    return FetchStream(counts=_counts(selection, plan), chunks=chunks())
