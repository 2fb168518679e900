"""Native fetch: the domain's selection (``repos.services.fetch``) written as one fetch mpack.

Blob bytes come through ``repos.storage.reader`` (cache, then each covering
pack read once). The pack is streamed to a spool, stored under its content key
and handed out by URL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hubhttp.instruments import note_transfer, transfer
from musehub_core.errors import BadRequest
from musehub_core.mpack import MPackWriter
from repos.models import Repo
from repos.selectors import branch_heads, repo_by_id
from repos.services.fetch import MAX_HAVE_IDS, SNAPSHOT_DELTA, FetchSet, check_ids, select_fetch
from repos.storage.backend import get_backend
from repos.storage.reader import BlobPlan, plan_blob_reads, read_blobs
from repos.storage.writer import record_fetch_pack, store_pack

log = logging.getLogger("musehub.fetch")
CAPABILITIES = (SNAPSHOT_DELTA,)


def build_fetch_mpack(repo: Repo, selection: FetchSet, plan: BlobPlan) -> tuple[str, int]:
    """Write the fetch pack for *selection*, store it, and return (mpack id, size)."""

    def write(writer: MPackWriter) -> tuple[str, int]:
        writer.write_commits(selection.commits)
        writer.write_snapshots(selection.snapshots)
        writer.begin_blobs(plan.count)
        for oid, raw in read_blobs(plan):
            writer.write_blob(oid, raw)
        return writer.finish(branch_heads(repo))

    mpack_id, size = store_pack(write, reuse=True)
    record_fetch_pack(
        mpack_id,
        repo_id=repo.repo_id,
        size=size,
        commits=len(selection.commits),
        snapshots=len(selection.snapshots),
        blobs=plan.count,
    )
    return mpack_id, size


@transfer("fetch", "mpack", "musehub.fetch")
def wire_fetch_mpack(
    repo_id: str, *, want: list[str], have: list[str], capabilities: Sequence[str] = ()
) -> dict[str, Any]:
    """Build the fetch pack taking a client from *have* to *want* and return where to download it.

    With ``snapshot-delta`` in *capabilities* snapshots travel as deltas (wire.md §2.1).

    Returns ``{mpack_id, mpack_url, commit_count, snapshot_count, blob_count, size}``.
    Raises BadRequest (bad ids), RefNotFound (a want the repo lacks) and
    FetchNotIndexedError (a needed blob is not yet indexed: retry).
    """
    repo = repo_by_id(repo_id)
    note_transfer(repo=repo.full_name)
    want_ids = check_ids(want, "want")
    have_ids = check_ids(have, "have", MAX_HAVE_IDS)
    if not isinstance(capabilities, (list, tuple)) or not all(isinstance(c, str) for c in capabilities):
        raise BadRequest("capabilities must be a list of names.")
    selection = select_fetch(repo, want=want_ids, have=have_ids, deltas=SNAPSHOT_DELTA in capabilities)
    plan = plan_blob_reads(selection.blob_ids)
    mpack_id, size = build_fetch_mpack(repo, selection, plan)
    note_transfer(pack=mpack_id, commits=len(selection.commits), blobs=plan.count, bytes=size)
    return {
        "mpack_id": mpack_id,
        "mpack_url": get_backend().presign_mpack_get(mpack_id),
        "commit_count": len(selection.commits),
        "snapshot_count": len(selection.snapshots),
        "blob_count": plan.count,
        "size": size,
    }
