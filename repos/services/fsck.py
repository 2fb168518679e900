"""Check the hub's stored data against itself: packs, index, cache, history and branch heads.

:func:`fsck` reads every pack once as a stream (``index_mpack`` gives its
digest and where each blob lies, and verifies every blob hash on the way),
compares the index rows with what the pack really holds, and then checks the
database alone: cached bytes hash to their ids, every object a snapshot names
is indexed or cached, every commit's parents, snapshot and graph row exist, and
every branch head exists.

Scope: the whole hub, one repository (``repo``: the rows it refers to and the
packs holding its blobs, plus a check that it refers to every object its
snapshots name, which gc relies on), or what was written since a time
(``since``: packs, objects and snapshots written since then, the commits of
those snapshots and the branches moved since). :func:`fsck_batch` checks the
next few repositories after a cursor, so a nightly job covers the whole hub
over several nights (``musehub_fsck --batch N --state FILE``).

Severity policy (documented in docs/maintenance.md):

- **error**: something a reader will trip over or that says stored data is
  wrong: a pack missing from storage (except fetch packs), bytes that do not
  hash to their id, an index row that disagrees with its pack, an object no
  source can serve, a dangling parent, snapshot or branch head. Any error
  makes ``musehub_fsck`` exit non-zero.
- **warning**: harmless or self-healing states: a pack in storage with no row
  (gc deletes it after the grace period, unless index rows still need it), a
  fetch pack (a cache) missing from storage, an index row pointing at a pack
  that no longer exists while the object is still served from another pack,
  its cache or its legacy key; a stored path holding a control or
  bidirectional character (pushed before pushes refused them).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from django.db import connection
from django.db.models import Q

from musehub_core.errors import MalformedPack
from musehub_core.ids import blob_id
from musehub_core.manifests import unsafe_paths
from musehub_core.mpack import BlobEntry, decode_verified, index_mpack, skip_bytes
from repos.manifests import named_forms, verify_snapshots
from repos.models import (
    Branch,
    Commit,
    CommitGraph,
    CommitRef,
    MPack,
    MPackIndex,
    MPackKind,
    Object,
    ObjectRef,
    Repo,
    Snapshot,
    SnapshotRef,
)
from repos.services.maintenance import CHUNK, Progress, chunks, maintenance_limits, no_progress
from repos.storage.backend import get_backend

ERROR = "error"
WARNING = "warning"
_SNAPSHOT_CHUNK = 500
_CACHE_CHUNK = 1_000


@dataclass(frozen=True)
class Problem:
    """One thing fsck found: how bad, what kind, which id it concerns, and a sentence about it."""

    severity: str
    code: str
    subject: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "subject": self.subject, "message": self.message}


@dataclass
class FsckReport:
    scope: str
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, severity: str, code: str, subject: str, message: str) -> None:
        self.problems.append(Problem(severity, code, subject, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "checked": dict(self.checked),
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass
class _PackResult:
    """What reading one pack showed: whether it is sound, and where each of its blobs lies."""

    sound: bool
    entries: dict[str, list[BlobEntry]] = field(default_factory=dict)
    damaged: set[str] = field(default_factory=set)  # blobs whose stored bytes do not decode to their id
    size: int = 0


@dataclass
class _Scope:
    repo: Repo | None
    since: dt.datetime | None = None

    @property
    def name(self) -> str:
        if self.repo is not None:
            return self.repo.full_name
        return f"written since {self.since.isoformat()}" if self.since is not None else "hub"

    def objects(self):
        qs = Object.objects.all()
        if self.since is not None:
            qs = qs.filter(created_at__gte=self.since)
        return qs.filter(refs__repo=self.repo) if self.repo is not None else qs

    def snapshots(self):
        qs = Snapshot.objects.all()
        if self.since is not None:
            qs = qs.filter(created_at__gte=self.since)
        return qs.filter(refs__repo=self.repo) if self.repo is not None else qs

    def commits(self):
        qs = Commit.objects.all()
        if self.since is not None:  # commits have no write time: those of the snapshots written since
            qs = qs.filter(snapshot_id__in=self.snapshots().values("snapshot_id"))
        return qs.filter(refs__repo=self.repo) if self.repo is not None else qs

    def branches(self):
        qs = Branch.objects.select_related("repo")
        if self.since is not None:
            qs = qs.filter(updated_at__gte=self.since)
        return qs.filter(repo=self.repo) if self.repo is not None else qs


def fsck(*, repo: Repo | None = None, since: dt.datetime | None = None, progress: Progress = no_progress) -> FsckReport:
    """Check the whole hub, only the rows *repo* refers to, or only what was written *since*; return every problem.

    Each pack in scope is streamed once (a damaged one is read again to find
    which blobs are hurt). Raises StorageUnavailable when storage cannot be reached.
    """
    scope = _Scope(repo, since)
    report = FsckReport(scope=scope.name)
    bad_rows = _check_packs(scope, report, progress)
    _check_unreadable(bad_rows, report)
    _check_cache(scope, report, progress)
    _check_snapshots(scope, report, progress)
    _check_commits(scope, report, progress)
    _check_branches(scope, report)
    return report


# --- packs and index ----------------------------------------------------------------------


class _PackRow(TypedDict):
    mpack_id: str
    kind: str
    size_bytes: int


def _pack_ids_in_scope(scope: _Scope) -> tuple[dict[str, _PackRow], set[str], set[str] | None]:
    """Return (MPack rows by id, pack ids index rows name, pack ids in storage or None when not listed)."""
    if scope.since is not None:
        rows = {
            r["mpack_id"]: r
            for r in MPack.objects.filter(created_at__gte=scope.since).values("mpack_id", "kind", "size_bytes")
        }
        return rows, set(), None
    if scope.repo is None:
        rows = {r["mpack_id"]: r for r in MPack.objects.values("mpack_id", "kind", "size_bytes")}
        indexed = set(MPackIndex.objects.values_list("mpack_id", flat=True).distinct())
        return rows, indexed, set(get_backend().list_mpacks())
    indexed = _packs_of_repo(scope.repo)
    rows = {
        r["mpack_id"]: r
        for r in MPack.objects.filter(Q(repo=scope.repo) | Q(mpack_id__in=list(indexed))).values(
            "mpack_id", "kind", "size_bytes"
        )
    }
    return rows, indexed, None


def _packs_of_repo(repo: Repo) -> set[str]:
    """Return the ids of the packs holding *repo*'s blobs, looked up from its own refs (one index probe each).

    On PostgreSQL the ``OFFSET 0`` keeps the planner from turning the lookup
    into a hash join over the hub's whole index table.
    """
    refs = connection.ops.quote_name(ObjectRef._meta.db_table)
    index = connection.ops.quote_name(MPackIndex._meta.db_table)
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT DISTINCT i.mpack_id FROM {refs} r CROSS JOIN LATERAL"
            f" (SELECT mpack_id FROM {index} x WHERE x.entity_id = r.object_id OFFSET 0) i WHERE r.repo_id = %s"
        )
    else:
        sql = (
            f"SELECT DISTINCT i.mpack_id FROM {refs} r JOIN {index} i ON i.entity_id = r.object_id WHERE r.repo_id = %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [repo.repo_id])
        return {row[0] for row in cursor.fetchall()}


def _check_packs(scope: _Scope, report: FsckReport, progress: Progress) -> dict[str, list[tuple[str, str]]]:
    """Read every pack in scope and compare its index rows; return {object_id: [(mpack_id, why)]} of bad rows."""
    rows, indexed, stored = _pack_ids_in_scope(scope)
    bad_rows: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if stored is not None:
        for mpack_id in sorted(stored - set(rows) - indexed):
            report.add(
                WARNING,
                "orphan-pack",
                mpack_id,
                f"mpack {mpack_id} is in storage but no row or index entry refers to it; "
                "musehub_gc deletes it once it is older than the grace period.",
            )
    to_read = sorted(set(rows) | indexed)
    total_bytes = sum(r["size_bytes"] or 0 for r in rows.values())
    with progress(total=total_bytes, desc="fsck packs", unit="B", unit_scale=True) as bar:
        for mpack_id in to_read:
            row = rows.get(mpack_id)
            in_storage = stored is None or mpack_id in stored
            result = _read_pack(mpack_id, report) if in_storage else None
            bar.update(row["size_bytes"] if row else 0)
            report.checked["mpacks"] += 1
            if result is None:
                _pack_missing(mpack_id, row, report)
            elif row is None:
                report.add(
                    WARNING,
                    "pack-without-row",
                    mpack_id,
                    f"mpack {mpack_id} is in storage and index entries use it, but it has no MPack row.",
                )
            elif row["size_bytes"] and result.sound and row["size_bytes"] != result.size:
                report.add(
                    WARNING,
                    "pack-size",
                    mpack_id,
                    f"mpack {mpack_id} is {result.size} bytes, but its row records {row['size_bytes']}.",
                )
            _check_index_rows(mpack_id, result, row is not None, report, bad_rows)
    return bad_rows


def _pack_missing(mpack_id: str, row: _PackRow | None, report: FsckReport) -> None:
    if row is None:
        return  # only index rows name it: reported per row by _check_index_rows
    if row["kind"] == MPackKind.FETCH:
        report.add(
            WARNING,
            "fetch-pack-missing",
            mpack_id,
            f"fetch mpack {mpack_id} has a row but is not in storage (a cache: clients that still hold its URL "
            "get a 404; musehub_gc removes the row).",
        )
        return
    report.add(
        ERROR,
        "pack-missing",
        mpack_id,
        f"{row['kind']} mpack {mpack_id} has a row but is not in storage.",
    )


def _read_pack(mpack_id: str, report: FsckReport) -> _PackResult | None:
    """Stream one pack and return what it holds, reporting damage; None when it is not in storage."""
    backend = get_backend()
    stream = backend.open_mpack(mpack_id)
    if stream is None:
        return None
    try:
        with stream:
            contents = index_mpack(stream, limits=maintenance_limits(), verify=True)
    except MalformedPack as exc:
        report.add(ERROR, "pack-damaged", mpack_id, f"mpack {mpack_id} is damaged: {exc.message}")
        return _diagnose(mpack_id, report)
    result = _PackResult(sound=True, size=contents.size)
    for entry in contents.blobs:
        result.entries.setdefault(entry.object_id, []).append(entry)
    if contents.digest != mpack_id:
        result.sound = False
        report.add(
            ERROR,
            "pack-digest",
            mpack_id,
            f"mpack {mpack_id} holds bytes that hash to {contents.digest}, not to its id.",
        )
    return result


def _diagnose(mpack_id: str, report: FsckReport) -> _PackResult:
    """Read a damaged pack again without verification, then check each blob, to name the hurt ones."""
    backend = get_backend()
    result = _PackResult(sound=False)
    stream = backend.open_mpack(mpack_id)
    if stream is None:
        return result
    try:
        with stream:
            contents = index_mpack(stream, limits=maintenance_limits(), verify=False)
    except MalformedPack:
        return result  # unparseable: every index row into it is bad
    result.size = contents.size
    for entry in contents.blobs:
        result.entries.setdefault(entry.object_id, []).append(entry)
    stream = backend.open_mpack(mpack_id)
    if stream is None:
        return result
    with stream:
        position = 0
        for entry in sorted(contents.blobs, key=lambda e: e.offset):
            skip_bytes(stream, entry.offset - position)  # a short pack shows up as a short read below
            stored = stream.read(entry.length)
            position = entry.offset + len(stored)
            if not _decodes_to(entry.object_id, stored, entry.encoding):
                result.damaged.add(entry.object_id)
                report.add(
                    ERROR,
                    "blob-damaged",
                    entry.object_id,
                    f"object {entry.object_id} in mpack {mpack_id} (bytes {entry.offset}+{entry.length}) "
                    "does not decode to its id.",
                )
    return result


def _decodes_to(object_id: str, stored: bytes, encoding: str) -> bool:
    return decode_verified(object_id, stored, encoding) is not None


def _check_index_rows(
    mpack_id: str,
    result: _PackResult | None,
    has_row: bool,
    report: FsckReport,
    bad_rows: dict[str, list[tuple[str, str]]],
) -> None:
    """Compare each index row of *mpack_id* with the blob the pack really holds there."""
    rows = MPackIndex.objects.filter(mpack_id=mpack_id).values_list("entity_id", "offset", "length", "encoding")
    for oid, offset, length, encoding in rows.iterator(chunk_size=CHUNK):
        report.checked["index_rows"] += 1
        if result is None:
            bad_rows[oid].append((mpack_id, "missing" if has_row else "dangling"))
            continue
        entries = result.entries.get(oid, [])
        if not entries:
            if result.sound:
                report.add(
                    ERROR,
                    "index-not-in-pack",
                    oid,
                    f"the index says object {oid} is in mpack {mpack_id}, but the pack does not hold it.",
                )
            bad_rows[oid].append((mpack_id, "absent"))
            continue
        match: BlobEntry | None
        if offset is None or length is None:
            match = entries[0]  # rows without a byte range (older hubs): readers parse the pack
        else:
            match = next(
                (e for e in entries if (e.offset, e.length, e.encoding) == (offset, length, encoding or "")), None
            )
        if match is None:
            if result.sound:
                where = entries[0]
                # (a row without a byte range always matches: this one has one)
                outside = result.size and offset is not None and length is not None and offset + length > result.size
                said = f"bytes {offset}+{length} ({encoding or 'raw'})"
                report.add(
                    ERROR,
                    "index-mismatch",
                    oid,
                    f"the index entry of object {oid} in mpack {mpack_id} says {said}"
                    + (f", which lies outside the pack ({result.size} bytes)" if outside else "")
                    + f"; the pack holds it at bytes {where.offset}+{where.length} ({where.encoding or 'raw'}).",
                )
            bad_rows[oid].append((mpack_id, "mismatch"))
        elif oid in result.damaged:
            bad_rows[oid].append((mpack_id, "damaged"))


def _check_unreadable(bad_rows: dict[str, list[tuple[str, str]]], report: FsckReport) -> None:
    """For each object with a bad index row, report whether anything else can still serve it."""
    backend = get_backend()
    for chunk in chunks(sorted(bad_rows), CHUNK):
        bad_pairs = {(oid, mpack_id) for oid in chunk for mpack_id, _ in bad_rows[oid]}
        good: set[str] = set()
        for oid, mpack_id in MPackIndex.objects.filter(entity_id__in=chunk).values_list("entity_id", "mpack_id"):
            if (oid, mpack_id) not in bad_pairs:
                good.add(oid)
        caches = dict(
            Object.objects.filter(object_id__in=chunk, content_cache__isnull=False).values_list(
                "object_id", "content_cache"
            )
        )
        existing = set(Object.objects.filter(object_id__in=chunk).values_list("object_id", flat=True))
        for oid in chunk:
            reasons = bad_rows[oid]
            readable = oid in good or (oid in caches and blob_id(bytes(caches[oid])) == oid)
            if not readable and oid in existing:
                raw = backend.get(oid)
                readable = raw is not None and blob_id(raw) == oid
            for mpack_id, why in reasons:
                if why == "dangling":
                    # An index row of a deleted object is litter gc sweeps; of a live one, harmless only if served.
                    report.add(
                        WARNING if readable or oid not in existing else ERROR,
                        "index-dangling",
                        oid,
                        f"the index says object {oid} is in mpack {mpack_id}, which has no row and is not in storage"
                        + ("; the object is still served from elsewhere." if readable else "."),
                    )
            if not readable and oid in existing:
                packs = ", ".join(f"{m} ({why})" for m, why in reasons)
                report.add(
                    ERROR,
                    "object-unreadable",
                    oid,
                    f"no source holds the correct bytes of object {oid}: its index entries are bad ({packs}), "
                    "and it has no good cache or legacy key; fetches that need it fail.",
                )


# --- database-only checks --------------------------------------------------------------------


def _check_cache(scope: _Scope, report: FsckReport, progress: Progress) -> None:
    rows = scope.objects().filter(content_cache__isnull=False)
    with progress(total=rows.count(), desc="fsck cache", unit="obj") as bar:
        for oid, content in rows.values_list("object_id", "content_cache").iterator(chunk_size=_CACHE_CHUNK):
            report.checked["cached_objects"] += 1
            bar.update()
            actual = blob_id(bytes(content))
            if actual != oid:
                report.add(
                    ERROR,
                    "cache-mismatch",
                    oid,
                    f"the content_cache of object {oid} hashes to {actual}; fetches of it fail until the cache is "
                    "cleared (UPDATE musehub_objects SET content_cache = NULL for that id).",
                )


def _served(object_ids: Iterable[str]) -> set[str]:
    """Return those of *object_ids* that are indexed in some pack or cached."""
    ids = list(object_ids)
    found = set(MPackIndex.objects.filter(entity_id__in=ids).values_list("entity_id", flat=True))
    rest = [oid for oid in ids if oid not in found]
    found.update(
        Object.objects.filter(object_id__in=rest, content_cache__isnull=False).values_list("object_id", flat=True)
    )
    return found


def _check_snapshots(scope: _Scope, report: FsckReport, progress: Progress) -> None:
    """Every snapshot must rebuild to its id, and every object it names be indexed or cached (else fetches fail)."""
    backend = get_backend()
    missing: dict[str, tuple[str, int]] = {}
    ids = list(scope.snapshots().values_list("snapshot_id", flat=True))
    with progress(total=len(ids), desc="fsck snapshots", unit="snap") as bar:
        for batch in chunks(ids, _SNAPSHOT_CHUNK):
            for snapshot_id, problem in verify_snapshots(batch):
                if problem:
                    report.add(ERROR, "snapshot-corrupt", snapshot_id, f"snapshot {snapshot_id} is damaged: {problem}.")
            named: dict[str, str] = {}
            for snapshot_id, form in named_forms(batch):
                for oid in form.named_objects():
                    named.setdefault(oid, snapshot_id)
                for path in unsafe_paths(form.named_paths()):
                    report.add(
                        WARNING,
                        "path-unsafe",
                        snapshot_id,
                        f"snapshot {snapshot_id} names path {path!r}, which holds a control or bidirectional "
                        "character: pushes refuse such paths now; the web cannot open it and clones write it as is.",
                    )
            report.checked["snapshots"] += len(batch)
            bar.update(len(batch))
            for ids_ in chunks(list(named), CHUNK):
                served = _served(ids_)
                for oid in ids_:
                    if oid not in served:
                        first, count = missing.get(oid, (named[oid], 0))
                        missing[oid] = (first, count + 1)
                if scope.repo is not None:
                    _check_refs(scope.repo, ids_, named, report)
    legacy = set(Object.objects.filter(object_id__in=list(missing)).values_list("object_id", flat=True))
    for oid, (snapshot_id, _) in sorted(missing.items()):
        hint = ""
        if oid in legacy and backend.exists(oid):
            hint = " It still has a legacy per-object key: run musehub_migrate_legacy."
        report.add(
            ERROR,
            "object-not-indexed",
            oid,
            f"snapshot {snapshot_id} names object {oid}, which is neither indexed in an mpack nor cached.{hint}",
        )


def _check_refs(repo: Repo, object_ids: list[str], named: dict[str, str], report: FsckReport) -> None:
    """Every object a snapshot of *repo* names must have a ref in *repo*: gc relies on it to skip manifests."""
    refs = set(ObjectRef.objects.filter(repo=repo, object_id__in=object_ids).values_list("object_id", flat=True))
    for oid in object_ids:
        if oid not in refs:
            report.add(
                ERROR,
                "object-ref-missing",
                oid,
                f"snapshot {named[oid]} of {repo.full_name} names object {oid}, but the repository has no ref to it; "
                "musehub_gc could delete it once no repository refers to it. Run musehub_gc with --full-mark "
                "until the ref is restored.",
            )


def _check_commits(scope: _Scope, report: FsckReport, progress: Progress) -> None:
    """Every commit's parents, snapshot and graph row must exist (in the repository, with --repo)."""
    rows = scope.commits().values_list("commit_id", "parent_ids", "snapshot_id")
    with progress(total=rows.count(), desc="fsck commits", unit="commit") as bar:
        for batch in chunks(rows.iterator(chunk_size=CHUNK), CHUNK):
            report.checked["commits"] += len(batch)
            bar.update(len(batch))
            parents = {p for _, parent_ids, _ in batch for p in parent_ids or []}
            snapshots = {sid for _, _, sid in batch}
            ids = [cid for cid, _, _ in batch]
            if scope.repo is None:
                known_commits = set(Commit.objects.filter(commit_id__in=parents).values_list("commit_id", flat=True))
                known_snaps = set(
                    Snapshot.objects.filter(snapshot_id__in=snapshots).values_list("snapshot_id", flat=True)
                )
            else:
                known_commits = set(
                    CommitRef.objects.filter(repo=scope.repo, commit_id__in=parents).values_list("commit_id", flat=True)
                )
                known_snaps = set(
                    SnapshotRef.objects.filter(repo=scope.repo, snapshot_id__in=snapshots).values_list(
                        "snapshot_id", flat=True
                    )
                )
            in_graph = set(CommitGraph.objects.filter(commit_id__in=ids).values_list("commit_id", flat=True))
            where = f" in {scope.name}" if scope.repo is not None else ""
            for commit_id, parent_ids, snapshot_id in batch:
                for parent in parent_ids or []:
                    if parent not in known_commits:
                        report.add(
                            ERROR,
                            "commit-parent-missing",
                            commit_id,
                            f"commit {commit_id} names parent {parent}, which does not exist{where}.",
                        )
                if snapshot_id not in known_snaps:
                    report.add(
                        ERROR,
                        "commit-snapshot-missing",
                        commit_id,
                        f"commit {commit_id} names snapshot {snapshot_id}, which does not exist{where}.",
                    )
                if commit_id not in in_graph:
                    report.add(
                        ERROR,
                        "commit-graph-missing",
                        commit_id,
                        f"commit {commit_id} has no commit-graph row, so ancestry walks cannot see it.",
                    )


def _check_branches(scope: _Scope, report: FsckReport) -> None:
    branches = list(scope.branches().filter(head_commit_id__isnull=False))
    heads = {b.head_commit_id for b in branches}
    seen = set(CommitRef.objects.filter(commit_id__in=list(heads)).values_list("repo_id", "commit_id").distinct())
    for branch in branches:
        report.checked["branches"] += 1
        if (branch.repo_id, branch.head_commit_id) not in seen:
            report.add(
                ERROR,
                "branch-head-missing",
                branch.head_commit_id,
                f"branch {branch.name!r} of {branch.repo.full_name} points at commit {branch.head_commit_id}, "
                "which that repository does not hold.",
            )


# --- spreading the whole hub over several runs ---------------------------------------------------


@dataclass
class BatchResult:
    """What one :func:`fsck_batch` run checked, and where the next run starts."""

    report: FsckReport
    repos: list[str] = field(default_factory=list)
    next_after: str | None = None  # the last repository checked, or None when the batch reached the end
    wrapped: bool = False


def fsck_batch(
    *, after: str | None, limit: int, since: dt.datetime | None = None, progress: Progress = no_progress
) -> BatchResult:
    """Check the *limit* repositories that follow *after* (an ``owner/slug``, in name order), then what was written
    *since* (when given); return the combined report and the cursor for the next run.

    Run nightly with the returned cursor, it covers every repository every
    ``repositories / limit`` nights, while ``since`` (the previous run's start)
    catches everything new at once. A cursor past the last repository wraps to the first.
    """
    combined = FsckReport(scope=f"{limit} repositories after {after or 'the start'}")
    result = BatchResult(report=combined)
    ordered = Repo.objects.order_by("owner", "slug")
    batch = list(ordered.filter(_after(after))[:limit]) if after else list(ordered[:limit])
    if not batch and after:
        batch, result.wrapped = list(ordered[:limit]), True
    parts = [fsck(repo=repo, progress=progress) for repo in batch]
    if since is not None:
        parts.append(fsck(since=since, progress=progress))
    for part in parts:
        combined.problems.extend(part.problems)
        for name, count in part.checked.items():
            combined.checked[name] += count
    result.repos = [repo.full_name for repo in batch]
    result.next_after = result.repos[-1] if len(batch) == limit else None
    return result


def _after(cursor: str) -> Q:
    owner, _, slug = cursor.partition("/")
    return Q(owner__gt=owner) | Q(owner=owner, slug__gt=slug)
