"""Collect garbage: content no repository refers to, and packs no index entry needs.

:func:`plan_gc` decides, :func:`collect_garbage` deletes (or, dry, only reports).
The rules (documented in docs/maintenance.md):

- **Rows.** Commit and commit-graph rows with no ``CommitRef`` of any
  repository (and not a branch head); snapshots with no ``SnapshotRef`` that no
  remaining commit names and no remaining snapshot is stored against (a
  delta keeps its chain of bases); objects with no ``ObjectRef`` that no remaining
  snapshot names; index rows of objects that no longer exist.
- **Marking objects.** A snapshot a repository refers to names only objects
  that repository refers to (push, MWP push, server commits and merges all
  check it; ``musehub_fsck`` reports ``object-ref-missing`` otherwise), so an
  object with no ref can only be named by a snapshot with no ref. gc decodes
  just those that stay (normally none), never the hub's other manifests: the
  work follows the garbage, not the hub. ``full_mark`` decodes every manifest,
  for a hub whose data predates the rule or where fsck found a missing ref.
- **Packs.** A pack is *needed* while any index entry points at it, whatever
  its kind. Fetch packs never get index entries (they are caches of past
  fetches), so they go once the grace period is over (a fetch that hands the
  same pack out again restarts it); push, server and migration packs go once
  a repack moved their blobs elsewhere (or their objects were deleted). A pack
  no repository owns any more (its repository was deleted, or a migration
  wrote it) also goes when every live blob in it has an index entry in
  another pack that stays: its entries are redundant. Packs in storage with
  no MPack row and no index entry (a failed push) go too.
- **Uploads.** Upload slots (``MPackUpload``) and staged MWP objects
  (``StagedObject``) older than the grace period, with their ``incoming/`` keys.
- **Unfinished writes.** On filesystem storage, the ``.write-*.part``
  temporary files of writes whose process was killed before the rename,
  older than the grace period (S3 writes are whole or absent).
- **Grace.** Nothing younger than the grace period is touched (default 24
  hours): an upload may be in flight, a push may have stored its pack but not
  yet committed its rows, a repack may have built its pack but not yet
  switched the index. Commits have no creation time; they are only ever
  written together with their refs in one transaction, so a ref-less commit
  is never a write in progress.

Every delete re-checks its condition in SQL (``NOT EXISTS`` a ref, an index
row, ...), so a row that gained a ref after planning survives, and rows go
before storage keys so a failure leaves an orphan for the next run, never a
row pointing at nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q

from repos.manifests import named_objects
from repos.models import (
    Branch,
    Commit,
    CommitGraph,
    CommitRef,
    MPack,
    MPackIndex,
    MPackKind,
    MPackUpload,
    Object,
    ObjectRef,
    Snapshot,
    SnapshotRef,
    StagedObject,
)
from repos.services.maintenance import CHUNK, Progress, chunks, no_progress
from repos.storage.backend import get_backend
from repos.storage.layout import is_mpack_uri

DEFAULT_GRACE_HOURS = 24.0
_SQL_CHUNK = 1_000


@dataclass
class GcPlan:
    """What a gc run deletes (or would delete)."""

    cutoff: dt.datetime
    commits: list[str] = field(default_factory=list)
    graph_rows: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    index_rows: list[int] = field(default_factory=list)
    redundant_rows: list[int] = field(default_factory=list)
    mpacks: list[dict[str, Any]] = field(default_factory=list)
    orphan_mpacks: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    staged_objects: list[tuple[str, str]] = field(default_factory=list)
    unfinished_writes: list[str] = field(default_factory=list)


@dataclass
class GcReport:
    dry_run: bool
    grace_hours: float
    cutoff: str
    deleted: dict[str, int] = field(default_factory=dict)
    mpacks: list[dict[str, Any]] = field(default_factory=list)
    orphan_mpacks: list[str] = field(default_factory=list)
    freed_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "grace_hours": self.grace_hours,
            "cutoff": self.cutoff,
            "deleted": self.deleted,
            "mpacks": self.mpacks,
            "orphan_mpacks": self.orphan_mpacks,
            "freed_bytes": self.freed_bytes,
        }


def _a_branch_head():
    """True for a commit some branch points at (NOT EXISTS, never NOT IN: its plan must not depend on work_mem)."""
    return Exists(Branch.objects.filter(head_commit_id=OuterRef("pk")))


def plan_gc(*, grace: dt.timedelta, progress: Progress = no_progress, full_mark: bool = False) -> GcPlan:
    """Return what gc would delete now with a grace period of *grace*; change nothing.

    Reads no manifest a repository refers to unless *full_mark* (see the object rule in the module docstring);
    its memory grows with the garbage found, not with the hub.
    """
    plan = GcPlan(cutoff=dt.datetime.now(dt.UTC) - grace)
    cutoff = plan.cutoff

    plan.commits = list(
        Commit.objects.filter(~Exists(CommitRef.objects.filter(commit_id=OuterRef("pk"))))
        .exclude(_a_branch_head())
        .values_list("commit_id", flat=True)
    )
    plan.graph_rows = list(
        CommitGraph.objects.filter(~Exists(CommitRef.objects.filter(commit_id=OuterRef("pk"))))
        .exclude(_a_branch_head())
        .values_list("commit_id", flat=True)
    )
    dropped_commits = set(plan.commits)

    candidates = set(
        Snapshot.objects.filter(~Exists(SnapshotRef.objects.filter(snapshot_id=OuterRef("pk"))))
        .filter(Q(created_at__isnull=True) | Q(created_at__lte=cutoff))
        .values_list("snapshot_id", flat=True)
    )
    for batch in chunks(sorted(candidates)):
        for commit_id, snapshot_id in Commit.objects.filter(snapshot_id__in=batch).values_list(
            "commit_id", "snapshot_id"
        ):
            if commit_id not in dropped_commits:
                candidates.discard(snapshot_id)  # a remaining commit still names it
    # A remaining snapshot stored as a delta keeps its whole chain of bases.
    while True:
        needed = set()
        for batch in chunks(sorted(candidates)):
            for snapshot_id, base_id in Snapshot.objects.filter(base_id__in=batch).values_list(
                "snapshot_id", "base_id"
            ):
                if snapshot_id not in candidates:
                    needed.add(base_id)
        if not needed:
            break
        candidates -= needed
    plan.snapshots = sorted(candidates)

    objects = set(
        Object.objects.filter(
            ~Exists(ObjectRef.objects.filter(object_id=OuterRef("pk"))), created_at__lte=cutoff
        ).values_list("object_id", flat=True)
    )
    if objects:
        # Never delete an object a remaining snapshot names, ref or not. A snapshot some repository refers to
        # names only objects that repository refers to too (every write path checks that each blob is in the
        # pack or the repository, and adds its ref; ``musehub_fsck`` checks it), so only the snapshots no
        # repository refers to that stay (a remaining commit or delta needs them) are decoded here, or every
        # snapshot with *full_mark* (for data written before that rule held).
        dropped_snapshots = set(plan.snapshots)
        marked = Snapshot.objects.values_list("snapshot_id", flat=True)
        if not full_mark:
            marked = marked.filter(~Exists(SnapshotRef.objects.filter(snapshot_id=OuterRef("pk"))))
        with progress(total=None, desc="gc snapshots", unit="snap") as bar:
            for batch in chunks(marked.iterator(chunk_size=CHUNK)):
                bar.update(len(batch))
                batch = [sid for sid in batch if sid not in dropped_snapshots]
                for _, named in named_objects(batch):
                    objects.difference_update(named)
                if not objects:
                    break
    plan.objects = sorted(objects)

    index_rows = set(
        MPackIndex.objects.filter(created_at__lte=cutoff)
        .filter(~Exists(Object.objects.filter(pk=OuterRef("entity_id"))))
        .values_list("pk", "mpack_id")
    )
    for batch in chunks(plan.objects):
        index_rows.update(MPackIndex.objects.filter(entity_id__in=batch).values_list("pk", "mpack_id"))
    plan.index_rows = sorted(pk for pk, _ in index_rows)
    dropped_per_pack = Counter(mpack_id for _, mpack_id in index_rows)

    def still_needed(ids: Sequence[str]) -> set[str]:
        counts = MPackIndex.objects.filter(mpack_id__in=ids).values("mpack_id").annotate(n=Count("pk"))
        return {row["mpack_id"] for row in counts if row["n"] > dropped_per_pack.get(row["mpack_id"], 0)}

    old_packs: list[dict[str, Any]] = [
        {"mpack_id": mpack_id, "kind": kind, "size_bytes": size, "repo": repo}
        for mpack_id, kind, size, repo in MPack.objects.filter(created_at__lte=cutoff).values_list(
            "mpack_id", "kind", "size_bytes", "repo"
        )
    ]
    for batch in chunks(old_packs):
        needed = still_needed([p["mpack_id"] for p in batch])
        plan.mpacks.extend(p for p in batch if p["mpack_id"] not in needed)
    _plan_redundant_packs(plan, old_packs, {pk for pk, _ in index_rows})
    for pack in plan.mpacks:
        pack.pop("repo", None)

    backend = get_backend()
    stored = list(backend.list_mpacks())
    for batch in chunks(stored):
        with_rows = set(MPack.objects.filter(mpack_id__in=batch).values_list("mpack_id", flat=True))
        rowless = [m for m in batch if m not in with_rows]
        needed = still_needed(rowless)
        for mpack_id in rowless:
            if mpack_id in needed:
                continue
            written = backend.mpack_modified_time(mpack_id)
            if written is not None and written <= cutoff:
                plan.orphan_mpacks.append(mpack_id)

    plan.uploads = [str(u) for u in MPackUpload.objects.filter(created_at__lte=cutoff).values_list("pk", flat=True)]
    plan.staged_objects = list(StagedObject.objects.filter(created_at__lte=cutoff).values_list("repo_id", "object_id"))
    plan.unfinished_writes = backend.unfinished_writes(cutoff)
    return plan


def _plan_redundant_packs(plan: GcPlan, old_packs: list[dict[str, Any]], dropped_rows: set[int]) -> None:
    """Plan to drop packs no repository owns any more whose live blobs all have a copy in a pack that stays.

    A pack pushed to a deleted repository (or written by a migration) would
    otherwise live forever because one of its blobs is shared with another
    repository. Packs are considered smallest first, and a blob's other copy
    must be in a pack that is not itself being dropped, so one copy always stays.
    """
    dropped = {p["mpack_id"] for p in plan.mpacks}
    ownerless = sorted(
        (p for p in old_packs if p["repo"] is None and p["kind"] != MPackKind.FETCH and p["mpack_id"] not in dropped),
        key=lambda p: (p["size_bytes"] or 0, p["mpack_id"]),
    )
    for pack in ownerless:
        rows = [
            (pk, oid)
            for pk, oid in MPackIndex.objects.filter(mpack_id=pack["mpack_id"]).values_list("pk", "entity_id")
            if pk not in dropped_rows
        ]
        covered: set[str] = set()
        for batch in chunks([oid for _, oid in rows]):
            others = (
                MPackIndex.objects.filter(entity_id__in=batch, mpack_id__in=MPack.objects.values("pk"))
                .exclude(mpack_id=pack["mpack_id"])
                .exclude(mpack_id__in=list(dropped))
            )
            covered.update(others.values_list("entity_id", flat=True))
        if all(oid in covered for _, oid in rows):
            plan.redundant_rows.extend(pk for pk, _ in rows)
            plan.mpacks.append(pack)
            dropped.add(pack["mpack_id"])


def _delete(sql: str, ids: Sequence[Any], *extra: Any) -> int:
    """Run ``DELETE … WHERE key IN (ids) AND …`` in chunks; return the rows deleted."""
    deleted = 0
    with connection.cursor() as cursor:
        for batch in chunks(ids, _SQL_CHUNK):
            marks = ", ".join(["%s"] * len(batch))
            cursor.execute(sql.format(ids=marks), [*batch, *extra])
            deleted += cursor.rowcount
    return deleted


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def apply_gc(plan: GcPlan, report: GcReport, *, progress: Progress = no_progress) -> None:
    """Delete what *plan* names, re-checking each condition; record what went in *report*."""
    backend = get_backend()
    t = {m.__name__: _table(m) for m in (Commit, CommitGraph, CommitRef, Snapshot, SnapshotRef, Branch)}
    t.update({m.__name__: _table(m) for m in (Object, ObjectRef, MPack, MPackIndex)})
    heads = f"SELECT 1 FROM {t['Branch']} b WHERE b.head_commit_id IS NOT NULL"
    counts: dict[str, int] = {}
    counts["commits"] = _delete(
        f"DELETE FROM {t['Commit']} WHERE commit_id IN ({{ids}})"
        f" AND NOT EXISTS (SELECT 1 FROM {t['CommitRef']} r WHERE r.commit_id = {t['Commit']}.commit_id)"
        f" AND NOT EXISTS ({heads} AND b.head_commit_id = {t['Commit']}.commit_id)",
        plan.commits,
    )
    counts["graph_rows"] = _delete(
        f"DELETE FROM {t['CommitGraph']} WHERE commit_id IN ({{ids}})"
        f" AND NOT EXISTS (SELECT 1 FROM {t['CommitRef']} r WHERE r.commit_id = {t['CommitGraph']}.commit_id)"
        f" AND NOT EXISTS ({heads} AND b.head_commit_id = {t['CommitGraph']}.commit_id)",
        plan.graph_rows,
    )
    # A delta's base goes only after the delta: each pass deletes the snapshots nothing is stored against.
    counts["snapshots"] = 0
    while True:
        deleted = _delete(
            f"DELETE FROM {t['Snapshot']} WHERE snapshot_id IN ({{ids}})"
            f" AND NOT EXISTS (SELECT 1 FROM {t['SnapshotRef']} r WHERE r.snapshot_id = {t['Snapshot']}.snapshot_id)"
            f" AND NOT EXISTS (SELECT 1 FROM {t['Commit']} c WHERE c.snapshot_id = {t['Snapshot']}.snapshot_id)"
            f" AND NOT EXISTS (SELECT 1 FROM {t['Snapshot']} d WHERE d.base_id = {t['Snapshot']}.snapshot_id)",
            plan.snapshots,
        )
        counts["snapshots"] += deleted
        if not deleted:
            break
    counts["objects"] = 0
    for batch in chunks(plan.objects, CHUNK):
        uris = dict(Object.objects.filter(object_id__in=batch).values_list("object_id", "storage_uri"))
        counts["objects"] += _delete(
            f"DELETE FROM {t['Object']} WHERE object_id IN ({{ids}})"
            f" AND NOT EXISTS (SELECT 1 FROM {t['ObjectRef']} r WHERE r.object_id = {t['Object']}.object_id)",
            batch,
        )
        remaining = set(Object.objects.filter(object_id__in=batch).values_list("object_id", flat=True))
        for oid, uri in uris.items():
            if oid not in remaining and uri and not is_mpack_uri(uri):
                backend.delete(oid)  # its legacy per-object key
    counts["index_rows"] = _delete(
        f"DELETE FROM {t['MPackIndex']} WHERE {MPackIndex._meta.pk.column} IN ({{ids}})"
        f" AND NOT EXISTS (SELECT 1 FROM {t['Object']} o WHERE o.object_id = {t['MPackIndex']}.entity_id)",
        plan.index_rows,
    )
    # A redundant row goes only while its blob keeps an entry in another pack.
    counts["index_rows"] += _delete(
        f"DELETE FROM {t['MPackIndex']} WHERE {MPackIndex._meta.pk.column} IN ({{ids}})"
        f" AND EXISTS (SELECT 1 FROM {t['MPackIndex']} j WHERE j.entity_id = {t['MPackIndex']}.entity_id"
        f" AND j.mpack_id <> {t['MPackIndex']}.mpack_id)",
        plan.redundant_rows,
    )
    still_indexed = f"SELECT 1 FROM {t['MPackIndex']} i WHERE i.mpack_id = {t['MPack']}.mpack_id"
    counts["mpacks"] = 0
    deleted_packs: list[dict[str, Any]] = []
    with progress(total=len(plan.mpacks) + len(plan.orphan_mpacks), desc="gc packs", unit="pack") as bar:
        for pack in plan.mpacks:
            bar.update()
            gone = _delete(
                f"DELETE FROM {t['MPack']} WHERE mpack_id IN ({{ids}}) AND created_at <= %s"
                f" AND NOT EXISTS ({still_indexed})",
                [pack["mpack_id"]],
                plan.cutoff,
            )
            if gone:
                backend.delete_mpack(pack["mpack_id"])
                counts["mpacks"] += 1
                deleted_packs.append(pack)
        counts["orphan_mpacks"] = 0
        deleted_orphans = []
        for mpack_id in plan.orphan_mpacks:
            bar.update()
            if (
                MPack.objects.filter(mpack_id=mpack_id).exists()
                or MPackIndex.objects.filter(mpack_id=mpack_id).exists()
            ):
                continue
            backend.delete_mpack(mpack_id)
            counts["orphan_mpacks"] += 1
            deleted_orphans.append(mpack_id)
    for upload_id in plan.uploads:
        backend.delete_upload(upload_id)
    counts["uploads"] = MPackUpload.objects.filter(pk__in=plan.uploads).delete()[0]
    for repo_id, object_id in plan.staged_objects:
        backend.delete_staged_object(repo_id, object_id)
        StagedObject.objects.filter(repo_id=repo_id, object_id=object_id).delete()
    counts["staged_objects"] = len(plan.staged_objects)
    for name in plan.unfinished_writes:
        backend.delete_unfinished_write(name)
    counts["unfinished_writes"] = len(plan.unfinished_writes)
    report.deleted = counts
    report.mpacks = deleted_packs
    report.orphan_mpacks = deleted_orphans


def collect_garbage(
    *,
    grace: dt.timedelta = dt.timedelta(hours=DEFAULT_GRACE_HOURS),
    dry_run: bool = False,
    progress: Progress = no_progress,
    full_mark: bool = False,
) -> GcReport:
    """Delete unreferenced rows and unneeded packs older than *grace*; with *dry_run*, only report them.

    Returns what was (or would be) deleted. Raises StorageUnavailable when
    storage cannot be reached (rows deleted so far stay deleted; rerun).
    """
    plan = plan_gc(grace=grace, progress=progress, full_mark=full_mark)
    report = GcReport(dry_run=dry_run, grace_hours=grace.total_seconds() / 3600, cutoff=plan.cutoff.isoformat())
    if dry_run:
        report.deleted = {
            "commits": len(plan.commits),
            "graph_rows": len(plan.graph_rows),
            "snapshots": len(plan.snapshots),
            "objects": len(plan.objects),
            "index_rows": len(plan.index_rows) + len(plan.redundant_rows),
            "mpacks": len(plan.mpacks),
            "orphan_mpacks": len(plan.orphan_mpacks),
            "uploads": len(plan.uploads),
            "staged_objects": len(plan.staged_objects),
            "unfinished_writes": len(plan.unfinished_writes),
        }
        report.mpacks = plan.mpacks
        report.orphan_mpacks = plan.orphan_mpacks
    else:
        apply_gc(plan, report, progress=progress)
    report.freed_bytes = sum(p["size_bytes"] or 0 for p in report.mpacks)
    return report
