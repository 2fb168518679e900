"""Helpers shared by the seed tests: rows inserted directly, as the seed documents do."""

from __future__ import annotations

import datetime as dt

from musehub_core.ids import compute_snapshot_id, fake_id
from musehub_core.mpack import build_wire_mpack
from repos.manifests import encode_full
from repos.models import Commit, CommitGraph, CommitRef, MPackIndex, Object, ObjectRef, Snapshot, SnapshotRef
from repos.storage.backend import StorageOp

MPACK_READS = {"get_mpack", "open_mpack", "get_range"}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_commit(repo, *, manifest: dict[str, str], seed: str, parent_ids=None, generation: int = 0) -> Commit:
    """Insert a snapshot, a commit and its graph row with fake ids, visible to *repo*."""
    snap_id = compute_snapshot_id(manifest)
    Snapshot.objects.get_or_create(
        snapshot_id=snap_id,
        defaults={
            "manifest_blob": encode_full(manifest),
            "entry_count": len(manifest),
            "created_at": now(),
        },
    )
    SnapshotRef.objects.get_or_create(repo=repo, snapshot_id=snap_id)
    commit = Commit.objects.create(
        commit_id=fake_id(f"commit-{seed}"),
        branch="main",
        parent_ids=parent_ids or [],
        message=f"commit {seed}",
        author="gabriel",
        timestamp=now(),
        snapshot_id=snap_id,
    )
    CommitRef.objects.get_or_create(repo=repo, commit=commit)
    CommitGraph.objects.get_or_create(
        commit_id=commit.commit_id,
        defaults={"parent_ids": parent_ids or [], "generation": generation, "snapshot_id": snap_id},
    )
    return commit


def index_object_in_mpack(oid: str, mpack_id: str, *, size: int = 8) -> None:
    """Record that *oid* lives in *mpack_id* (no byte range, no per-object key), as older hubs did."""
    Object.objects.get_or_create(
        object_id=oid, defaults={"path": "file.dat", "size_bytes": size, "storage_uri": f"mpack://{mpack_id}"}
    )
    MPackIndex.objects.get_or_create(entity_id=oid, mpack_id=mpack_id, defaults={"entity_type": "object"})


def give_repo(repo, *oids: str) -> None:
    for oid in oids:
        ObjectRef.objects.get_or_create(repo=repo, object_id=oid)


def mpack_of(objects: dict[str, bytes], *, zstd: bool = False) -> bytes:
    import zstandard

    blobs = []
    for oid, data in objects.items():
        if zstd:
            blobs.append({"object_id": oid, "encoding": "zstd", "content": zstandard.ZstdCompressor().compress(data)})
        else:
            blobs.append({"object_id": oid, "content": data})
    return build_wire_mpack({"commits": [], "snapshots": [], "blobs": blobs, "branch_heads": {}})


def reads_of(ops: list[StorageOp], mpack_id: str) -> int:
    return sum(1 for op in ops if op.op in MPACK_READS and op.key == mpack_id)
