"""Fetch: the commits a client lacks, their snapshots, and only the blobs it does not hold.

Commits come from the graph table and snapshots from the database; blob
bytes come through ``repos.storage.reader`` (cache, then each covering pack read once).
The result is streamed into one fetch mpack, stored under its content key and
handed out by URL.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hubhttp.instruments import note_transfer, transfer
from musehub_core.errors import BadRequest, RefNotFound
from musehub_core.ids import is_id
from musehub_core.mpack import MPackWriter
from repos import graph
from repos.manifests import load_manifests
from repos.models import Commit, CommitGraph, CommitRef, MPack, MPackKind, Repo
from repos.selectors import branch_heads, repo_by_id
from repos.storage.backend import get_backend
from repos.storage.reader import BlobPlan, plan_blob_reads, read_blobs

log = logging.getLogger("musehub.fetch")
MAX_IDS = 10_000
MAX_HAVE_IDS = 1_000_000
MAX_HAVE_WALK = 1_000
_CHUNK = 10_000
_SPOOL_BYTES = 16 * 1024 * 1024


@dataclass
class FetchSet:
    """What a fetch sends: commits (parents first), their snapshots, and the blobs to send."""

    commits: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    blob_ids: list[str]


def check_ids(values: object, name: str, limit: int = MAX_IDS) -> list[str]:
    """Return *values* as a list of commit ids, or raise BadRequest naming *name*."""
    if not isinstance(values, list) or len(values) > limit:
        raise BadRequest(f"{name} must be a list of at most {limit} commit ids.")
    for value in values:
        if not is_id(value):
            raise BadRequest(f"{name} holds {value!r:.80}, which is not a commit id.")
    return list(dict.fromkeys(values))


def commit_dicts(commit_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Return commit dicts for *commit_ids*, in that order, from the database."""
    rows: dict[str, dict[str, Any]] = {}
    fields = ("commit_id", "parent_ids", "snapshot_id", "branch", "message", "author", "committed_at", "metadata")
    for start in range(0, len(commit_ids), _CHUNK):
        chunk = commit_ids[start : start + _CHUNK]
        for row in Commit.objects.filter(commit_id__in=chunk).values(*fields, "timestamp"):
            if not row["committed_at"]:
                row["committed_at"] = row["timestamp"].isoformat()
            del row["timestamp"]
            rows[row["commit_id"]] = row
    return [rows[cid] for cid in commit_ids if cid in rows]


def known_have(repo: Repo, have: Sequence[str], *, limit: int = MAX_HAVE_WALK) -> list[str]:
    """Return the *have* ids *repo* knows, at most *limit* of them (the newest by generation).

    Dropping a have id can only make a fetch send more, never less, so a
    client listing every commit it holds (the muse CLI does) costs one bounded walk.
    """
    known: list[str] = []
    for start in range(0, len(have), _CHUNK):
        chunk = list(have[start : start + _CHUNK])
        known.extend(CommitRef.objects.filter(repo=repo, commit_id__in=chunk).values_list("commit_id", flat=True))
    if len(known) <= limit:
        return known
    generation = graph.generations(known)
    return sorted(known, key=lambda cid: generation.get(cid, -1), reverse=True)[:limit]


def select_fetch(repo: Repo, *, want: Iterable[str], have: Iterable[str]) -> FetchSet:
    """Return what a client holding *have* needs to reach *want* in *repo*."""
    want_ids = list(want)
    visible = set(CommitRef.objects.filter(repo=repo, commit_id__in=want_ids).values_list("commit_id", flat=True))
    unknown = [cid for cid in want_ids if cid not in visible]
    if unknown:
        raise RefNotFound(f"Commit {unknown[0]} is not in {repo.full_name}.")
    send = graph.commits_between(want_ids, known_have(repo, list(have)))
    commits = commit_dicts(send)
    sent = set(send)
    # The client holds every blob of the commits at the boundary of what it has.
    edge = {p for c in commits for p in c["parent_ids"] if p not in sent}
    edge_snapshots = dict(CommitGraph.objects.filter(commit_id__in=list(edge)).values_list("commit_id", "snapshot_id"))
    send_snapshot_ids = list(dict.fromkeys(c["snapshot_id"] for c in commits))
    manifests = load_manifests([*send_snapshot_ids, *edge_snapshots.values()])
    held = {oid for sid in edge_snapshots.values() for oid in manifests.get(sid, {}).values()}
    blob_ids = list(
        dict.fromkeys(oid for sid in send_snapshot_ids for oid in manifests.get(sid, {}).values() if oid not in held)
    )
    snapshots = [
        {"snapshot_id": sid, "manifest": manifests.get(sid, {}), "created_at": ""} for sid in send_snapshot_ids
    ]
    return FetchSet(commits=commits, snapshots=snapshots, blob_ids=blob_ids)


def build_fetch_mpack(repo: Repo, selection: FetchSet, plan: BlobPlan) -> tuple[str, int]:
    """Write the fetch pack for *selection*, store it, and return (mpack id, size)."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        writer = MPackWriter(spool)
        writer.write_commits(selection.commits)
        writer.write_snapshots(selection.snapshots)
        writer.begin_blobs(plan.count)
        for oid, raw in read_blobs(plan):
            writer.write_blob(oid, raw)
        mpack_id, size = writer.finish(branch_heads(repo))
        backend = get_backend()
        if not backend.mpack_exists(mpack_id):
            spool.seek(0)
            backend.put_mpack(mpack_id, spool)
    _, created = MPack.objects.get_or_create(
        mpack_id=mpack_id,
        defaults={
            "kind": MPackKind.FETCH,
            "repo": repo,
            "size_bytes": size,
            "commit_count": len(selection.commits),
            "snapshot_count": len(selection.snapshots),
            "blob_count": plan.count,
        },
    )
    if not created:
        # Handed out again (an unchanged repo fetched twice): restart musehub_gc's grace period for it.
        MPack.objects.filter(mpack_id=mpack_id).update(created_at=dt.datetime.now(dt.UTC))
    return mpack_id, size


@transfer("fetch", "mpack", "musehub.fetch")
def wire_fetch_mpack(repo_id: str, *, want: list[str], have: list[str]) -> dict[str, Any]:
    """Build the fetch pack taking a client from *have* to *want* and return where to download it.

    Returns ``{mpack_id, mpack_url, commit_count, snapshot_count, blob_count, size}``.
    Raises BadRequest (bad ids), RefNotFound (a want the repo lacks) and
    FetchNotIndexedError (a needed blob is not yet indexed: retry).
    """
    repo = repo_by_id(repo_id)
    note_transfer(repo=repo.full_name)
    want_ids = check_ids(want, "want")
    have_ids = check_ids(have, "have", MAX_HAVE_IDS)
    selection = select_fetch(repo, want=want_ids, have=have_ids)
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
