"""Receive a push: the one pipeline both protocols (native mpack and MWP) run.

verify commits → rebuild and verify snapshots (full or delta) and plan how they
are stored → connectivity (parents, snapshots, blobs in the push or the
repository) → store the blobs (the protocol's own step: promote the uploaded
pack, or write one; it may still be running) → one transaction: rows, refs,
index entries, the branch move and the protocol's own clean-up, committed only
once the storage step has settled, run again if the database aborted it
for a deadlock or serialization failure → once committed, a geometric repack
when the repository has many packs. A push refused at any step writes no rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from musehub_core.errors import MalformedPack, NonFastForward
from musehub_core.ids import from_wire_hex
from musehub_core.manifests import refuse_unsafe_paths
from repos import graph
from repos.access import User
from repos.bulk import insert_ignore
from repos.models import Branch, CommitRef, MPack, ObjectRef, Repo
from repos.services.history import (
    Added,
    check_connectivity,
    plan_snapshots,
    seen_by_repo,
    verify_commits,
    write_history,
)
from repos.services.repack import compact_after_push
from repos.services.repos import adopt_domain, creatable_or_repo, move_branch
from repos.storage.writer import StoredBlob
from repos.transactions import run_atomic


@dataclass
class StoredBlobs:
    """What the protocol's storage step produced: the pack written (if any), where each blob lies, and
    blobs the hub already held that the repository only needs a ref to."""

    mpack: MPack | None = None
    blobs: Sequence[StoredBlob] = ()
    refs_only: Collection[str] = field(default_factory=list)
    # Waits for storage work still under way (raising if it failed); the transaction commits only after it.
    settle: Callable[[], object] = lambda: None


@dataclass(frozen=True)
class IncomingPush:
    """A push as the domain sees it, whatever protocol brought it."""

    commits: Sequence[Mapping[str, Any]]
    snapshots: Sequence[Mapping[str, Any]]
    blob_ids: Collection[str]  # blobs that arrive with the push (in the pack, inline, or uploaded apart)
    branch: str
    head: str | None  # where the branch moves (None: no branch move)
    force: bool = False


def receive_push(
    repo: Repo,
    push: IncomingPush,
    *,
    store_blobs: Callable[[], StoredBlobs],
    finish: Callable[[], None] = lambda: None,
) -> Added:
    """Check *push* against *repo*, store it and move its branch; return what the repository gained.

    *store_blobs* runs after every check passed and before the transaction;
    *finish* runs last inside the transaction (and again if it is retried). Raises MalformedPack (ids,
    hashes, deltas or connectivity; UnsafePath for a path with control characters) or NonFastForward (without ``force``);
    then nothing is written.
    """
    verify_commits(push.commits)
    for snapshot in push.snapshots:  # a delta's new paths are its set; its deletes may remove old unsafe ones
        refuse_unsafe_paths(
            snapshot.get("manifest") or snapshot.get("set") or {}, f"snapshot {snapshot['snapshot_id']}"
        )
    rows = plan_snapshots(repo, commits=push.commits, snapshots=push.snapshots)
    check_connectivity(repo, commits=push.commits, snapshots=rows, blob_ids=push.blob_ids)
    pushed = {c["commit_id"] for c in push.commits}
    if push.head and push.head not in pushed and not CommitRef.objects.filter(repo=repo, commit_id=push.head).exists():
        raise MalformedPack(f"head_commit_id {push.head} is neither in the pack nor in the repository.")
    if push.head and not push.force:
        check_fast_forward(repo, push)
    stored = store_blobs()

    def write() -> Added:
        added = write_history(repo, commits=push.commits, snapshots=rows, blobs=stored.blobs, mpack=stored.mpack)
        if stored.refs_only:
            added.blobs += insert_ignore(ObjectRef, ["repo", "object"], ((repo.repo_id, o) for o in stored.refs_only))
        adopt_domain(repo, push.commits)
        if push.head:
            move_branch(repo, push.branch, push.head, force=push.force)
        finish()
        stored.settle()
        return added

    try:
        added = run_atomic(write)
    except BaseException:
        _settle_quietly(stored)  # storage work of a failed push ends before the error is answered
        raise
    compact_after_push(repo)
    return added


def _settle_quietly(stored: StoredBlobs) -> None:
    with contextlib.suppress(Exception):  # the push already failed; that error is the one to report
        stored.settle()


def check_fast_forward(repo: Repo, push: IncomingPush) -> None:
    """Raise NonFastForward now, before anything is stored, when the branch's current head cannot be reached.

    The head is reachable when it is the new head, or an ancestor of it through
    the pushed commits and then the stored graph. ``move_branch`` checks again
    under the branch's row lock; this early check only spares storage work (and
    uploads left behind) for pushes that would be refused anyway.
    """
    current = Branch.objects.filter(repo=repo, name=push.branch).values_list("head_commit_id", flat=True).first()
    if not current or current == push.head:
        return
    parents = {c["commit_id"]: c["parent_ids"] for c in push.commits}
    frontier, seen, stored = [push.head], set(), []
    while frontier:
        commit_id = frontier.pop()
        if commit_id in seen:
            continue
        seen.add(commit_id)
        if commit_id == current:
            return
        if commit_id in parents:
            frontier.extend(parents[commit_id])
        else:
            stored.append(commit_id)
    if any(graph.is_ancestor(current, commit_id) for commit_id in stored):
        return
    raise NonFastForward(
        f"Branch {push.branch!r} is at {current}, which is not an ancestor of {push.head}. "
        "Fetch and merge first, or push with force.",
        branch=push.branch,
        remote_head=current,
    )


def missing_objects(*, acting_user: User | None, owner: str, slug: str, object_ids: Sequence[str]) -> list[str]:
    """Return those of *object_ids* (``sha256:`` or bare hex) repository ``owner/slug`` does not hold, in order.

    A repository that does not exist yet, and that *acting_user* may create by
    pushing, holds nothing: every id is missing (the CLI asks before its first push).
    """
    repo = creatable_or_repo(acting_user=acting_user, owner=owner, slug=slug)
    if repo is None:
        return list(object_ids)
    held = seen_by_repo(ObjectRef, repo, "object_id", [from_wire_hex(i) for i in object_ids])
    return [i for i in object_ids if from_wire_hex(i) not in held]
