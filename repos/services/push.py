"""Receive a push: the one pipeline both protocols (native mpack and MWP) run.

verify commits → rebuild and verify snapshots (full or delta) and plan how they
are stored → connectivity (parents, snapshots, blobs in the push or the
repository) → store the blobs (the protocol's own step: promote the uploaded
pack, or write one; it may still be running) → one transaction: rows, refs,
index entries, the branch move and the protocol's own clean-up, committed only
once the storage step has settled, run again if the database aborted it
for a deadlock or serialization failure → once committed, a geometric repack
when the repository has many packs. A push refused at any step writes no rows.

Each protocol enters it through its own door, after its face parsed the request:

- :func:`receive_pack`: a native push, one pack (uploaded through a slot, see
  ``repos.services.uploads``, or sent inline), read back once and verified;
- :func:`receive_objects` and :func:`receive_bundle`: MWP, loose objects (in
  batches, inline, or staged by presigned upload) and then commits and snapshots.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from musehub_core.errors import MalformedPack, NonFastForward, PackNotFound
from musehub_core.ids import from_wire_hex
from musehub_core.manifests import refuse_unsafe_paths
from musehub_core.mpack import PackContents, PackLimits, index_mpack
from repos import graph
from repos.bulk import insert_ignore
from repos.models import Branch, CommitRef, MPack, MPackIndex, MPackKind, Object, ObjectRef, Repo
from repos.services.history import (
    Added,
    check_connectivity,
    plan_snapshots,
    seen_by_repo,
    verify_commits,
    write_history,
)
from repos.services.repack import compact_after_push
from repos.services.repos import adopt_domain, move_branch
from repos.services.uploads import PackSource, delete_staged_bytes, forget_staged, open_staged, staged_among
from repos.storage.writer import StoredBlob, new_mpack_row, pack_blobs
from repos.transactions import run_atomic


def pack_limits() -> PackLimits:
    """Return the pack limits configured in settings."""
    return PackLimits(
        max_pack_bytes=settings.MUSEHUB_MAX_PACK_BYTES,
        max_commits=settings.MUSEHUB_MAX_PACK_COMMITS,
        max_snapshots=settings.MUSEHUB_MAX_PACK_SNAPSHOTS,
        max_blobs=settings.MUSEHUB_MAX_PACK_BLOBS,
        max_blob_bytes=settings.MUSEHUB_MAX_BLOB_BYTES,
        max_manifest_entries=settings.MUSEHUB_MAX_MANIFEST_ENTRIES,
    )


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
    if not current or not push.head or current == push.head:  # no branch move, or one that changes nothing
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


def missing_objects(repo: Repo | None, object_ids: Sequence[str]) -> list[str]:
    """Return those of *object_ids* (``sha256:`` or bare hex) *repo* does not hold, in order.

    *repo* None is a repository a push is about to create: it holds nothing,
    so every id is missing (the CLI asks before its first push).
    """
    if repo is None:
        return list(object_ids)
    held = seen_by_repo(ObjectRef, repo, "object_id", [from_wire_hex(i) for i in object_ids])
    return [i for i in object_ids if from_wire_hex(i) not in held]


# --- the native protocol: one pack --------------------------------------------------------------


@dataclass(frozen=True)
class PackReceived:
    """What a native push brought: the pack's size in bytes and what the repository gained."""

    size: int
    added: Added


def receive_pack(
    repo: Repo,
    mpack_key: str,
    *,
    inline: bytes | None = None,
    branch: str,
    head_commit_id: str | None,
    commits_count: int,
    blobs_count: int,
    force: bool = False,
) -> PackReceived:
    """Unpack the pack *repo* uploaded under *mpack_key* (or *inline*, sent in the push call), move *branch*.

    The pack is streamed back once, must hash to *mpack_key* and hold the
    declared counts; its blobs are indexed and verified, the rest goes through
    :func:`receive_push`, while the pack moves to its content key.
    Raises PackNotFound (no such upload for this repo, or its bytes are not
    there yet), MalformedPack (bad bytes, hashes, ids, counts or connectivity),
    NonFastForward (without *force*); a refused pack leaves no upload behind
    and writes no rows.
    """
    source = PackSource.inline_pack(inline) if inline is not None else PackSource.locate(repo, mpack_key)
    try:
        contents = _read_pack(mpack_key, source)
        if len(contents.commits) != commits_count or len(contents.blobs) != blobs_count:
            raise MalformedPack(
                f"The pack holds {len(contents.commits)} commits and {len(contents.blobs)} blobs, "
                f"but the request declared {commits_count} and {blobs_count}."
            )
        if contents.commits and not head_commit_id:
            raise MalformedPack("head_commit_id is required when the pack holds commits.")

        def promote() -> StoredBlobs:
            moving = source.start_promote(mpack_key)
            mpack = new_mpack_row(
                mpack_key,
                kind=MPackKind.PUSH,
                size=contents.size,
                blobs=len(contents.blobs),
                commits=len(contents.commits),
                snapshots=len(contents.snapshots),
            )
            blobs = [StoredBlob(b.object_id, b.size, b.offset, b.length, b.encoding, b.content) for b in contents.blobs]
            return StoredBlobs(mpack=mpack, blobs=blobs, settle=moving.result)

        push = IncomingPush(
            commits=contents.commits,
            snapshots=contents.snapshots,
            blob_ids=[b.object_id for b in contents.blobs],
            branch=branch,
            head=head_commit_id or None,
            force=force,
        )
        added = receive_push(repo, push, store_blobs=promote, finish=lambda: source.forget(repo, mpack_key))
    except (MalformedPack, NonFastForward):
        source.discard()  # a refused push leaves no upload behind
        raise
    return PackReceived(size=contents.size, added=added)


def _read_pack(mpack_key: str, source: PackSource) -> PackContents:
    """Return the indexed, verified contents of the pack at *source*, which must hash to *mpack_key*."""
    stream = source.open(mpack_key)
    if stream is None:
        raise PackNotFound(f"Pack {mpack_key} is not in storage yet: PUT it to the upload URL first.")
    with stream:
        contents = index_mpack(
            stream, limits=pack_limits(), keep_content_up_to=settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES
        )
    if contents.digest != mpack_key:
        raise MalformedPack(f"The uploaded bytes hash to {contents.digest}, not to the key {mpack_key}.")
    return contents


# --- MWP: loose objects, then a bundle of commits and snapshots ---------------------------------


def receive_objects(repo: Repo, contents: Mapping[str, bytes]) -> list[str]:
    """Store a batch of verified blobs for *repo* as one pack; return the ids *repo* did not hold before."""
    known = seen_by_repo(ObjectRef, repo, "object_id", contents)
    new = {oid: raw for oid, raw in contents.items() if oid not in known}
    mpack, stored, refs_only = _store_loose(repo, new)
    with transaction.atomic():
        write_history(repo, commits=[], snapshots=[], blobs=stored, mpack=mpack)
        insert_ignore(ObjectRef, ["repo", "object"], ((repo.repo_id, oid) for oid in refs_only))
    return list(new)


def receive_bundle(
    repo: Repo,
    *,
    commits: Sequence[Mapping[str, Any]],
    snapshots: Sequence[Mapping[str, Any]],
    inline: Mapping[str, bytes],
    branch: str,
    head: str,
    force: bool = False,
) -> Sequence[StoredBlob]:
    """Store a bundle's commits and snapshots, with its *inline* blobs and the staged uploads they name, and
    move *branch* to *head*; return the blobs written to a new pack.

    Blobs neither in the bundle nor in *repo* are read from its staged
    uploads; every staged upload the push made unnecessary is forgotten.
    Raises MalformedPack (bad ids, hashes or missing content) and
    NonFastForward (without *force*).
    """
    referenced = {oid for snap in snapshots for oid in snap["manifest"].values()}
    known = seen_by_repo(ObjectRef, repo, "object_id", referenced | set(inline))
    fresh_inline = {oid: raw for oid, raw in inline.items() if oid not in known}
    staged = staged_among(repo, referenced - known - set(inline))
    done: list[str] = []
    written: list[StoredBlobs] = []

    def store() -> StoredBlobs:
        mpack, stored, refs_only = _store_loose(repo, fresh_inline, staged)
        written.append(StoredBlobs(mpack=mpack, blobs=stored, refs_only=refs_only))
        return written[0]

    def finish() -> None:
        # Every upload this push made unnecessary goes, not only the folded ones.
        done[:] = forget_staged(repo, [*referenced, *inline])

    incoming = IncomingPush(
        commits=commits, snapshots=snapshots, blob_ids=[*inline, *staged], branch=branch, head=head, force=force
    )
    receive_push(repo, incoming, store_blobs=store, finish=finish)
    delete_staged_bytes(repo, done)
    return written[0].blobs


def _store_loose(repo: Repo, contents: Mapping[str, bytes], staged: Sequence[str] = ()):
    """Return (mpack, stored blobs, ref-only ids) for blobs this repo gains.

    Blobs the hub already holds in a pack or cache only gain a ref (the client
    proved it has the bytes); the rest, with the staged uploads, go into one new pack.
    """
    candidates = list(contents)
    held = set(MPackIndex.objects.filter(entity_id__in=candidates).values_list("entity_id", flat=True))
    held |= set(
        Object.objects.filter(object_id__in=candidates, content_cache__isnull=False).values_list("object_id", flat=True)
    )
    streamed = [(oid, lambda oid=oid: open_staged(repo, oid)) for oid in staged]
    fresh = {oid: raw for oid, raw in contents.items() if oid not in held}
    mpack, stored = pack_blobs(fresh, streamed=streamed, kind=MPackKind.PUSH)
    return mpack, stored, [oid for oid in contents if oid in held]
