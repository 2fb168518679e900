"""Write history into the hub: the one path every commit, snapshot and blob row takes.

Push (both protocols, through ``repos.services.push``), server-side commits
and merges all go through :func:`verify_commits`, :func:`plan_snapshots`,
:func:`check_connectivity` and :func:`write_history` (:func:`record_history`
runs the four), so ids are recomputed, snapshots sent as deltas are rebuilt
and verified, nothing dangles, and the storage rule holds the same way
everywhere: commits and snapshots in the database (``storage_uri`` NULL; a
snapshot as a delta where that is smaller, see ``repos.manifests``), blobs as
``mpack://<key>`` rows with a byte-range index entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from musehub_core.errors import MalformedPack
from musehub_core.ids import compute_commit_id
from musehub_core.manifests import Tree, delta_of, rebuild_snapshots
from repos import graph
from repos.bulk import insert_ignore
from repos.manifests import (
    SNAPSHOT_FIELDS,
    SnapshotPlanner,
    SnapshotRow,
    load_manifests,
    recent_tree,
    remember_tree,
)
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


def seen_by_repo(
    model: type[CommitRef | SnapshotRef | ObjectRef], repo: Repo, field: str, ids: Iterable[str]
) -> set[str]:
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


def verify_commits(commits: Sequence[Mapping[str, Any]]) -> None:
    """Recompute every commit id and parse every timestamp; raise MalformedPack on the first mismatch."""
    for i, commit in enumerate(commits):
        parse_timestamp(commit["committed_at"], f"commits[{i}].committed_at")
        expected = compute_commit_id(
            commit["parent_ids"], commit["snapshot_id"], commit["message"], commit["committed_at"]
        )
        if expected != commit["commit_id"]:
            raise MalformedPack(
                f"commits[{i}]: id {commit['commit_id']} does not match its content (expected {expected})."
            )


def _parent_snapshots(commits: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Return {snapshot id: its commit's first parent's snapshot id} for the pushed commits that have a parent."""
    in_pack = {c["commit_id"]: c["snapshot_id"] for c in commits}
    outside = {c["parent_ids"][0] for c in commits if c["parent_ids"] and c["parent_ids"][0] not in in_pack}
    known = dict(CommitGraph.objects.filter(commit_id__in=list(outside)).values_list("commit_id", "snapshot_id"))
    found: dict[str, str] = {}
    for c in commits:
        if c["parent_ids"]:
            parent_snapshot = in_pack.get(c["parent_ids"][0]) or known.get(c["parent_ids"][0])
            if parent_snapshot:
                found.setdefault(c["snapshot_id"], parent_snapshot)
    return found


def _parents_first(commits: Sequence[Mapping[str, Any]], snapshots: Sequence[Mapping[str, Any]]) -> list[int]:
    """Return the indexes of *snapshots* ordered like their commits, oldest generation first (others last)."""
    gens = _generations(commits)
    rank: dict[str, int] = {}
    for c in commits:
        rank[c["snapshot_id"]] = min(rank.get(c["snapshot_id"], gens[c["commit_id"]]), gens[c["commit_id"]])
    last = max(rank.values(), default=0) + 1
    return sorted(range(len(snapshots)), key=lambda i: rank.get(snapshots[i]["snapshot_id"], last))


def plan_snapshots(
    repo: Repo, *, commits: Sequence[Mapping[str, Any]], snapshots: Sequence[Mapping[str, Any]]
) -> list[SnapshotRow]:
    """Rebuild and verify every snapshot (full or delta) and decide how each is stored.

    A delta's base must come earlier in *snapshots* or be a snapshot *repo*
    holds: a snapshot only another repository holds is refused like an unknown
    one. Each snapshot is stored against its commit's first parent's snapshot
    where that is smaller. Raises MalformedPack naming the snapshot and the problem.
    """
    if not snapshots:
        return []
    positions = list(range(len(snapshots)))
    if not any("base" in snap for snap in snapshots):
        # Full snapshots may come in any order (the CLI sends newest first): store parents first.
        positions = _parents_first(commits, snapshots)
        snapshots = [snapshots[i] for i in positions]
    prefer = _parent_snapshots(commits)

    def bases_of_repo(ids: list[str]) -> dict[str, dict[str, str] | Tree]:
        held = seen_by_repo(SnapshotRef, repo, "snapshot_id", ids)
        found: dict[str, dict[str, str] | Tree] = {sid: t for sid in held if (t := recent_tree(sid)) is not None}
        found.update(load_manifests([sid for sid in held if sid not in found]))
        return found

    pushed = [s["snapshot_id"] for s in snapshots]
    bases = {s["base"] for s in snapshots if "base" in s} | set(prefer.values())
    # One query: the stored depth of every pushed snapshot (a re-push keeps its row) and of every base.
    depths = dict(Snapshot.objects.filter(snapshot_id__any=[*pushed, *bases]).values_list("snapshot_id", "depth"))
    existing = {sid: depths[sid] for sid in pushed if sid in depths}
    planner = SnapshotPlanner(depths={sid: depth for sid, depth in depths.items() if sid in bases})
    last: tuple[str, Tree] | None = None
    for snap, tree in rebuild_snapshots(snapshots, bases_of_repo, positions=positions):
        sid = snap["snapshot_id"]
        last = (sid, tree)
        base_id = prefer.get(sid) or snap.get("base")
        sent = delta_of(snap) if snap.get("base") == base_id else None
        planner.add(
            sid,
            tree.manifest,
            base_id=base_id,
            delta=sent,
            stored_depth=existing.get(sid),
            created_at=snap.get("created_at") or "",
        )
    if last is not None:  # the last in the pack's order: normally the pushed head, which the next push builds on
        remember_tree(*last)
    return planner.rows


def _describe(missing: Iterable[str], limit: int = 3) -> str:
    items = sorted(missing)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_connectivity(
    repo: Repo,
    *,
    commits: Sequence[Mapping[str, Any]],
    snapshots: Sequence[SnapshotRow],
    blob_ids: Iterable[str],
) -> None:
    """Raise MalformedPack unless every parent, snapshot and blob named exists in the pack or the repo.

    Content another repository holds does not count: a client must send what
    this repository has not seen, so no one can reach content by id alone. Only
    the blobs each snapshot adds beyond the snapshot it was compared with are
    looked up (that one's were checked when it arrived), so a small commit on
    a big tree costs what it changed.
    """
    pack_commits = {c["commit_id"] for c in commits}
    pack_snapshots = {s.snapshot_id for s in snapshots}
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

    objects = {oid for s in snapshots for oid in s.added.values()} - pack_blobs
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
    snapshots: Sequence[SnapshotRow],
    blobs: Sequence[StoredBlob] = (),
    mpack: MPack | None = None,
) -> Added:
    """Insert rows and refs for *commits*, *snapshots* and *blobs* (idempotent; call inside a transaction).

    *snapshots* are rows planned by :func:`plan_snapshots`. Blobs are recorded
    as living in *mpack* (``mpack://<key>`` plus an index entry); small ones
    also get ``content_cache``. Commits and snapshots are stored in the
    database only. Return how many commits and blobs *repo*
    gained (ones it already had do not count).
    """
    added = Added()
    if mpack is not None:
        record_mpack(mpack, repo_id=repo.repo_id)
    now = dt.datetime.now(dt.UTC)
    if blobs:
        if mpack is None:
            raise ValueError("Blobs need the mpack that holds them.")
        hints = {oid: path for s in snapshots for path, oid in s.added.items()}
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
            [*SNAPSHOT_FIELDS, "created_at", "storage_uri"],
            ((*s.as_insert(), now, None) for s in snapshots),
        )
        insert_ignore(SnapshotRef, ["repo", "snapshot"], ((repo.repo_id, s.snapshot_id) for s in snapshots))
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


def record_history(
    repo: Repo,
    *,
    commits: Sequence[Mapping[str, Any]],
    snapshots: Sequence[Mapping[str, Any]],
    blobs: Sequence[StoredBlob] = (),
    mpack: MPack | None = None,
) -> Added:
    """Verify, check and write history the hub made itself (server-side commits, merges); call inside a transaction."""
    verify_commits(commits)
    rows = plan_snapshots(repo, commits=commits, snapshots=snapshots)
    check_connectivity(repo, commits=commits, snapshots=rows, blob_ids=[b.object_id for b in blobs])
    return write_history(repo, commits=commits, snapshots=rows, blobs=blobs, mpack=mpack)
