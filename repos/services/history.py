"""Write history into the hub: the one path every commit, snapshot and blob row takes.

Push (both protocols), server-side commits and merges all call
:func:`verify_history`, :func:`check_connectivity` and :func:`write_history`,
so ids are recomputed, nothing dangles, and the storage rule holds the same way
everywhere: commits and snapshots in the database (``storage_uri`` NULL), blobs
as ``mpack://<key>`` rows with a byte-range index entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Model

from musehub_core.errors import MalformedPack
from musehub_core.ids import compute_commit_id, compute_snapshot_id
from musehub_core.manifests import directories_of
from repos import graph
from repos.bulk import insert_ignore
from repos.manifests import encode_manifest, load_manifests
from repos.models import (
    Commit,
    CommitGraph,
    CommitRef,
    MPack,
    Object,
    ObjectRef,
    Repo,
    Snapshot,
    SnapshotRef,
)
from repos.storage.layout import mpack_uri
from repos.storage.writer import StoredBlob, record_index, record_mpack

_CHUNK = 10_000


def seen_by_repo(model: type[Model], repo: Repo, field: str, ids: Iterable[str]) -> set[str]:
    """Return those of *ids* that *repo* already sees through *model* (a ``*Ref`` table)."""
    wanted = list(dict.fromkeys(ids))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(model.objects.filter(repo=repo, **{f"{field}__in": chunk}).values_list(field, flat=True))
    return found


def parse_timestamp(value: str, where: str) -> dt.datetime:
    """Return the aware datetime of an ISO-8601 *value* (naive means UTC)."""
    try:
        stamp = dt.datetime.fromisoformat(value)
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
        stamp.astimezone(dt.UTC)  # a time near year 1 or 9999 may not exist in UTC
    except (ValueError, OverflowError) as exc:
        raise MalformedPack(f"{where} is not a usable ISO-8601 timestamp: {value!r:.64}.") from exc
    return stamp


def verify_history(commits: Sequence[Mapping[str, Any]], snapshots: Sequence[Mapping[str, Any]]) -> None:
    """Recompute every snapshot and commit id; raise MalformedPack on the first mismatch."""
    for i, snap in enumerate(snapshots):
        expected = compute_snapshot_id(snap["manifest"])
        if expected != snap["snapshot_id"]:
            raise MalformedPack(
                f"snapshots[{i}]: id {snap['snapshot_id']} does not match its manifest (expected {expected})."
            )
    for i, commit in enumerate(commits):
        parse_timestamp(commit["committed_at"], f"commits[{i}].committed_at")
        expected = compute_commit_id(
            commit["parent_ids"], commit["snapshot_id"], commit["message"], commit["committed_at"]
        )
        if expected != commit["commit_id"]:
            raise MalformedPack(
                f"commits[{i}]: id {commit['commit_id']} does not match its content (expected {expected})."
            )


def _describe(missing: Iterable[str], limit: int = 3) -> str:
    items = sorted(missing)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_connectivity(
    repo: Repo,
    *,
    commits: Sequence[Mapping[str, Any]],
    snapshots: Sequence[Mapping[str, Any]],
    blob_ids: Iterable[str],
) -> None:
    """Raise MalformedPack unless every parent, snapshot and blob named exists in the pack or the repo.

    Content another repository holds does not count: a client must send what
    this repository has not seen, so no one can reach content by id alone.
    """
    pack_commits = {c["commit_id"] for c in commits}
    pack_snapshots = {s["snapshot_id"] for s in snapshots}
    pack_blobs = set(blob_ids)

    parents = {p for c in commits for p in c["parent_ids"]} - pack_commits
    missing = parents - seen_by_repo(CommitRef, repo, "commit_id", parents)
    if missing:
        raise MalformedPack(
            f"Missing parent commits: {_describe(missing)} are neither in the pack nor in the repository."
        )

    snaps = {c["snapshot_id"] for c in commits} - pack_snapshots
    missing = snaps - seen_by_repo(SnapshotRef, repo, "snapshot_id", snaps)
    if missing:
        raise MalformedPack(f"Missing snapshots: {_describe(missing)} are neither in the pack nor in the repository.")

    objects = {oid for s in snapshots for oid in s["manifest"].values()} - pack_blobs
    # What a parent's snapshot names the repo already holds (checked when that parent arrived):
    # a small commit on a big tree then looks up only the blobs it changed.
    edge = {p for c in commits for p in c["parent_ids"]} - pack_commits
    edge_snapshots = CommitGraph.objects.filter(commit_id__in=list(edge)).values_list("snapshot_id", flat=True)
    for manifest in load_manifests(edge_snapshots).values():
        objects.difference_update(manifest.values())
    missing = objects - seen_by_repo(ObjectRef, repo, "object_id", objects)
    if missing:
        raise MalformedPack(f"Missing blobs: {_describe(missing)} are neither in the pack nor in the repository.")


def _generations(commits: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Return the generation of every commit in *commits* (parents outside come from the graph)."""
    in_pack = {c["commit_id"]: c for c in commits}
    outside = {p for c in commits for p in c["parent_ids"] if p not in in_pack}
    known = graph.generations(outside)
    result: dict[str, int] = {}
    for commit_id in in_pack:
        # Iterative depth-first walk: a commit is finished once all its in-pack parents are.
        stack = [(commit_id, False)]
        while stack:
            current, parents_done = stack.pop()
            if current in result:
                continue
            parents = in_pack[current]["parent_ids"]
            if not parents_done:
                stack.append((current, True))
                stack.extend((p, False) for p in parents if p in in_pack and p not in result)
                continue
            if any(p in in_pack and p not in result for p in parents):
                raise MalformedPack("The pack's commits form a cycle.")
            parent_gens = [result[p] if p in in_pack else known.get(p, 0) for p in parents]
            result[current] = 1 + max(parent_gens) if parent_gens else 0
    return result


@dataclass
class Added:
    """What one write gave a repository that it did not see before."""

    commits: int = 0
    blobs: int = 0


def write_history(
    repo: Repo,
    *,
    commits: Sequence[Mapping[str, Any]],
    snapshots: Sequence[Mapping[str, Any]],
    blobs: Sequence[StoredBlob] = (),
    mpack: MPack | None = None,
) -> Added:
    """Insert rows and refs for *commits*, *snapshots* and *blobs* (idempotent; call inside a transaction).

    Blobs are recorded as living in *mpack* (``mpack://<key>`` plus an index
    entry); small ones also get ``content_cache``. Commits and snapshots are
    stored in the database only. Return how many commits and blobs *repo*
    gained (ones it already had do not count).
    """
    added = Added()
    if mpack is not None:
        record_mpack(mpack, repo_id=repo.repo_id)
    now = dt.datetime.now(dt.UTC)
    if blobs:
        if mpack is None:
            raise ValueError("Blobs need the mpack that holds them.")
        hints = {oid: path for s in snapshots for path, oid in s["manifest"].items()}
        cache_max = settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES
        uri = mpack_uri(mpack.mpack_id)
        insert_ignore(
            Object,
            ["object_id", "size_bytes", "path", "storage_uri", "content_cache", "created_at"],
            (
                (
                    b.object_id,
                    b.size,
                    hints.get(b.object_id, "")[:1024],
                    uri,
                    b.content if b.content is not None and b.size <= cache_max else None,
                    now,
                )
                for b in blobs
            ),
        )
        record_index(mpack.mpack_id, blobs)
        added.blobs = insert_ignore(ObjectRef, ["repo", "object"], ((repo.repo_id, b.object_id) for b in blobs))
    if snapshots:
        insert_ignore(
            Snapshot,
            ["snapshot_id", "manifest_blob", "entry_count", "directories", "created_at", "storage_uri"],
            (
                (
                    s["snapshot_id"],
                    encode_manifest(s["manifest"]),
                    len(s["manifest"]),
                    directories_of(s["manifest"]),
                    now,
                    None,
                )
                for s in snapshots
            ),
        )
        insert_ignore(SnapshotRef, ["repo", "snapshot"], ((repo.repo_id, s["snapshot_id"]) for s in snapshots))
    if commits:
        gens = _generations(commits)
        insert_ignore(
            Commit,
            [
                "commit_id",
                "parent_ids",
                "snapshot_id",
                "branch",
                "message",
                "author",
                "committed_at",
                "timestamp",
                "metadata",
                "storage_uri",
            ],
            (
                (
                    c["commit_id"],
                    list(c["parent_ids"]),
                    c["snapshot_id"],
                    c["branch"],
                    c["message"],
                    c["author"],
                    c["committed_at"],
                    parse_timestamp(c["committed_at"], "committed_at"),
                    c.get("metadata") or {},
                    None,
                )
                for c in commits
            ),
        )
        insert_ignore(
            CommitGraph,
            ["commit_id", "parent_ids", "generation", "snapshot_id"],
            ((c["commit_id"], list(c["parent_ids"]), gens[c["commit_id"]], c["snapshot_id"]) for c in commits),
        )
        added.commits = insert_ignore(CommitRef, ["repo", "commit"], ((repo.repo_id, c["commit_id"]) for c in commits))
    return added
