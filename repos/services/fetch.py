"""What a fetch sends: the commits a client lacks, their snapshots, and only the blobs it does not hold.

Both protocols select through :func:`select_fetch`. Commits come from the
graph table, snapshots from ``repos.manifests``. With ``deltas`` (the client
asked for ``snapshot-delta``, docs/wire.md §2.1) a snapshot stored as a delta goes
out as that delta whenever its base is one the client will hold by then (sent
earlier, or the snapshot of a commit it listed in ``have``), so a clone costs
what the history changed and is never rebuilt row by row; a checkpoint goes
out as a delta against its first parent's snapshot when that is smaller.
Without it every snapshot is full, as older clients expect.

A native fetch without ``pack-stream`` is written as one fetch pack, stored and
recorded (:func:`build_fetch_mpack`); MWP asks how large the selected blobs are
(:func:`total_size`) and which commits hub and client share (:func:`negotiate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Sum

from musehub_core.errors import BadRequest, RefNotFound
from musehub_core.ids import is_id
from musehub_core.manifests import Tree, snapshot_dict
from musehub_core.mpack import MPackWriter
from repos import graph
from repos.manifests import (
    KEPT_TREES,
    TREE_MIN_ENTRIES,
    iter_manifests,
    load_manifest,
    named_among,
    remember_tree,
    stated_times,
    stored_forms,
)
from repos.models import Commit, CommitGraph, CommitRef, Object, Repo
from repos.selectors import branch_heads
from repos.storage.reader import BlobPlan, read_blobs
from repos.storage.writer import record_fetch_pack, store_pack

MAX_IDS = 10_000
MAX_HAVE_IDS = 1_000_000
MAX_HAVE_WALK = 1_000
_CHUNK = 10_000


@dataclass
class FetchSet:
    """What a fetch sends: commits (parents first), their snapshots (full or delta), and the blobs to send."""

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
    for row in Commit.objects.filter(commit_id__any=commit_ids).values(*fields, "timestamp"):
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


def select_fetch(repo: Repo, *, want: Iterable[str], have: Iterable[str], deltas: bool = False) -> FetchSet:
    """Return what a client holding *have* needs to reach *want* in *repo* (snapshots as deltas with *deltas*)."""
    want_ids = list(want)
    visible = set(CommitRef.objects.filter(repo=repo, commit_id__in=want_ids).values_list("commit_id", flat=True))
    unknown = [cid for cid in want_ids if cid not in visible]
    if unknown:
        raise RefNotFound(f"Commit {unknown[0]} is not in {repo.full_name}.")
    have_known = known_have(repo, list(have))
    send = graph.commits_between(want_ids, have_known)
    commits = commit_dicts(send)
    sent = set(send)
    # The client holds every blob of the commits at the boundary of what it has.
    edge = {p for c in commits for p in c["parent_ids"] if p not in sent}
    edge_snapshots = dict(CommitGraph.objects.filter(commit_id__in=list(edge)).values_list("commit_id", "snapshot_id"))
    listed = set(have_known)
    # docs/wire.md §2.1: deltas may use the snapshots of `have` commits as bases
    bases = {sid for cid, sid in edge_snapshots.items() if cid in listed}
    snapshots, named = _snapshot_dicts(commits, edge_snapshots, bases) if deltas else _full_snapshot_dicts(commits)
    held_objects = named_among(edge_snapshots.values(), named) if edge_snapshots else set()
    blob_ids = [oid for oid in named if oid not in held_objects]
    _keep_wanted_trees(commits, want_ids, snapshots)
    return FetchSet(commits=commits, snapshots=snapshots, blob_ids=blob_ids)


def build_fetch_mpack(repo: Repo, selection: FetchSet, plan: BlobPlan) -> tuple[str, int]:
    """Write the fetch pack for *selection* (blobs read as *plan* says), store it, record it; return (mpack id, size)."""

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


def total_size(object_ids: Sequence[str]) -> int:
    """Return the bytes the blobs *object_ids* hold together, as their rows record them."""
    return Object.objects.filter(object_id__in=object_ids).aggregate(total=Sum("size_bytes"))["total"] or 0


def negotiate(repo: Repo, *, want: Sequence[str], have: Sequence[str]) -> tuple[list[str], str | None]:
    """Return (the *have* ids *repo* holds, in order; the newest of them that *want* descends from, or None).

    Only commits *repo* holds are walked: the graph is shared with private repositories.
    """
    want_ids = list(CommitRef.objects.filter(repo=repo, commit_id__in=want).values_list("commit_id", flat=True))
    known = set(CommitRef.objects.filter(repo=repo, commit_id__in=have).values_list("commit_id", flat=True))
    ack = [cid for cid in have if cid in known]
    common = graph.ancestors(want_ids) & known if ack and want_ids else set()
    generation = graph.generations(common)
    base = max(common, key=lambda cid: (generation.get(cid, -1), cid)) if common else None
    return ack, base


def _keep_wanted_trees(commits: Sequence[dict[str, Any]], want: Sequence[str], snapshots: Sequence[dict]) -> None:
    """Keep the tree of a wanted head sent in full (a clone): the client's next push is most likely on top of it.

    Costs a clone of 25,000 files about 7 ms; the push then checks its snapshot
    id without rebuilding the manifest (see ``repos.manifests.remember_tree``).
    The tree is kept only if it hashes to its id.
    """
    heads = set(want)
    wanted = {c["snapshot_id"] for c in commits if c["commit_id"] in heads}
    full = [s for s in snapshots if s["snapshot_id"] in wanted and "manifest" in s]
    for snap in full[-KEPT_TREES:]:  # the process keeps no more than that
        sid = snap["snapshot_id"]
        if len(snap["manifest"]) >= TREE_MIN_ENTRIES:
            tree = Tree.of(snap["manifest"])
            if tree.snapshot_id() == sid:
                remember_tree(sid, tree)


def _send_order(commits: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(c["snapshot_id"] for c in commits))


def _full_snapshot_dicts(commits: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, None]]:
    snapshots: list[dict[str, Any]] = []
    named: dict[str, None] = {}
    order = _send_order(commits)
    times = stated_times(order)
    for sid, manifest in iter_manifests(order):
        snapshots.append(snapshot_dict(sid, manifest, created_at=times.get(sid, "")))
        named.update(dict.fromkeys(manifest.values()))
    return snapshots, named


def _snapshot_dicts(
    commits: Sequence[dict[str, Any]], edge_snapshots: dict[str, str], bases: set[str]
) -> tuple[list[dict[str, Any]], dict[str, None]]:
    """Return the snapshot dicts to send (deltas wherever the base will be held) and the objects they name."""
    by_commit = {c["commit_id"]: c["snapshot_id"] for c in commits} | edge_snapshots
    first_parent = {c["snapshot_id"]: by_commit.get(c["parent_ids"][0]) for c in reversed(commits) if c["parent_ids"]}
    order = _send_order(commits)
    forms = stored_forms(order)
    available = set(bases)
    snapshots: list[dict[str, Any]] = []
    named: dict[str, None] = {}
    for sid in order:
        form = forms.get(sid)
        snap: dict[str, Any]
        if form is not None and form.delta is not None and form.base_id in available:
            snap = {
                "snapshot_id": sid,
                "base": form.base_id,
                "set": form.delta.set,
                "delete": form.delta.delete,
                "created_at": form.created_at,
            }
        else:
            manifest = form.manifest if form is not None and form.manifest is not None else load_manifest(sid)
            parent = first_parent.get(sid)
            base = (parent, load_manifest(parent)) if parent in available else None
            snap = snapshot_dict(sid, manifest, base=base, created_at=form.created_at if form else "")
        named.update(dict.fromkeys((snap["set"] if "base" in snap else snap["manifest"]).values()))
        snapshots.append(snap)
        available.add(sid)
    return snapshots, named
