"""Pushes a benchmark script makes by hand: trees of files as commits, in one native mpack push."""

from __future__ import annotations

import msgpack
import requests

from bench.hub import BENCH_USER, Hub
from musehub_core.ids import blob_id, compute_snapshot_id
from musehub_core.mpack import build_wire_mpack, encode_blob
from musehub_core.protocol import MSGPACK_TYPE, NATIVE_PROTOCOL, PROTOCOL_HEADER
from musehub_core.records import commit_record


def push_trees(hub: Hub, slug: str, trees: list[dict[str, bytes]], *, zstd: bool = False) -> tuple[list[str], int]:
    """Push *trees* as a line of commits on ``main`` in one native push; return (the commit ids, the pack's bytes).

    With *zstd* each blob is stored as ``encode_blob`` chooses (zstd where it saves space).
    """
    commits, snapshots, blobs, parent = [], [], {}, None
    for number, files in enumerate(trees):
        manifest = {path: blob_id(raw) for path, raw in files.items()}
        blobs.update({blob_id(raw): raw for raw in files.values()})
        snapshot_id = compute_snapshot_id(manifest)
        commit = commit_record(
            parent_ids=[parent] if parent else [],
            snapshot_id=snapshot_id,
            branch="main",
            message=f"commit {number}",
            author=BENCH_USER,
            committed_at=f"2026-12-0{number + 1}T00:00:00+00:00",
        )
        commits.append(commit)
        snapshots.append({"snapshot_id": snapshot_id, "manifest": manifest, "created_at": ""})
        parent = commit["commit_id"]
    pack = build_wire_mpack(
        {
            "commits": commits,
            "snapshots": snapshots,
            "blobs": [_blob_entry(oid, raw, zstd) for oid, raw in blobs.items()],
        }
    )
    headers = {
        "Authorization": f"Bearer {hub.token}",
        PROTOCOL_HEADER: NATIVE_PROTOCOL,
        "Content-Type": MSGPACK_TYPE,
        "Accept": MSGPACK_TYPE,
    }
    base = f"{hub.url}/{BENCH_USER}/{slug}"
    key = blob_id(pack)
    slot = requests.post(
        f"{base}/mpack/upload", data=msgpack.packb({"mpack_key": key, "size": len(pack)}), headers=headers
    )
    slot.raise_for_status()
    upload_url = msgpack.unpackb(slot.content)["upload_url"]
    requests.put(upload_url, data=pack, headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    body = {
        "mpack_key": key,
        "branch": "main",
        "head_commit_id": parent,
        "force": False,
        "commits_count": len(commits),
        "blobs_count": len(blobs),
    }
    requests.post(f"{base}/mpack/push", data=msgpack.packb(body), headers=headers).raise_for_status()
    return [c["commit_id"] for c in commits], len(pack)


def _blob_entry(object_id: str, raw: bytes, zstd: bool) -> dict:
    if not zstd:
        return {"object_id": object_id, "content": raw}
    content, encoding = encode_blob(raw)
    return {"object_id": object_id, "content": content, "encoding": encoding}
