"""The read model of trees, history and diffs: what the REST API and the web pages both answer from.

Built on the plain queries of ``repos.selectors`` and on ``repos.manifests``.
What it keeps in this process never goes stale, because a snapshot never
changes:

- trees: a per-snapshot directory index (:func:`dir_index`). The first listing
  of a tree decodes its manifest once; every later listing, page or file lookup
  of any directory of that tree reads no manifest at all.
- history: :class:`CommitLog`, the log of a commit, newest first. Filtered by a
  path it compares each commit with its first parent (mostly from stored
  deltas), each pair once per process, and only as far as the page asked for
  needs.
- diffs: what a commit or a branch changed (:func:`commit_diff`,
  :func:`branch_diff`), and for pages the changed files with sizes and
  budgeted text diffs (:func:`file_changes`). Blob bytes come from
  ``repos.storage.reader`` (content cache first, then each covering mpack
  once), never more than a page shows.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from musehub_core.errors import MergeConflict, NotFound
from musehub_core.manifests import ManifestDiff, is_under
from musehub_core.merge import merge_manifests
from musehub_core.textdiff import PAGE_DIFF_UNITS, DiffBudget, unified_diff
from repos import graph
from repos.manifests import changed_paths, load_manifest
from repos.models import Commit
from repos.selectors import commits_by_id, manifests_of_commits, object_sizes, snapshot_ids_of
from repos.storage.reader import plan_blob_reads, read_blobs

TEXT_MAX_BYTES = 512 * 1024  # a file view renders at most this much text
DIFF_MAX_BYTES = 256 * 1024  # a diff compares files up to this size (each side)
DIFF_MAX_LINES = 2_000  # and shows at most this many lines of one file's diff


# --- trees: a per-snapshot directory index --------------------------------------------------------


@dataclass
class TreeEntry:
    """One entry of a directory listing: a sub-directory, or a file with its object id (and size, once filled in)."""

    name: str
    path: str
    kind: str  # "file" or "dir"
    object_id: str | None = None
    size: int | None = None


@dataclass
class DirIndex:
    """One snapshot's directories: for each directory path, its sub-directory names and its files, sorted."""

    dirs: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # dir -> [(name, object_id)]
    entry_count: int = 0

    @classmethod
    def of(cls, manifest: dict[str, str]) -> DirIndex:
        files: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for path, object_id in manifest.items():  # one split per file; directories are walked once each below
            parent, _, name = path.rpartition("/")
            files[parent].append((name, object_id))
        children: dict[str, set[str]] = defaultdict(set)
        linked = {""}  # directories already listed in their parent
        for directory in list(files):
            while directory not in linked:
                linked.add(directory)
                grand, _, name = directory.rpartition("/")
                children[grand].add(name)
                directory = grand
        index = cls(entry_count=len(manifest))
        index.dirs = {path: sorted(children.get(path, ())) for path in linked}
        index.files = {path: sorted(entries) for path, entries in files.items()}
        return index

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def listing_size(self, path: str) -> int:
        return len(self.dirs.get(path, ())) + len(self.files.get(path, ()))

    def listing(self, path: str, *, offset: int = 0, limit: int | None = None) -> list[TreeEntry]:
        """Return entries of directory *path*: sub-directories first, then files, by name; one page of them."""
        if path not in self.dirs:
            raise NotFound(f"No directory {path!r} at this ref.")
        subdirs = self.dirs.get(path, [])
        files = self.files.get(path, [])
        stop = self.listing_size(path) if limit is None else offset + limit
        prefix = f"{path}/" if path else ""
        entries = [TreeEntry(name=n, path=prefix + n, kind="dir") for n in subdirs[offset:stop]]
        first_file, last_file = max(0, offset - len(subdirs)), max(0, stop - len(subdirs))
        entries += [
            TreeEntry(name=n, path=prefix + n, kind="file", object_id=oid) for n, oid in files[first_file:last_file]
        ]
        return entries

    def entries(self, path: str) -> Listing:
        """Return directory *path* as a lazily sliced sequence of entries (a paginator builds only its page)."""
        if path not in self.dirs:
            raise NotFound(f"No directory {path!r} at this ref.")
        return Listing(self, path)

    def file(self, path: str) -> str | None:
        """Return the object id of file *path*, or None."""
        parent, _, name = path.rpartition("/")
        entries = self.files.get(parent, [])
        at = bisect_left(entries, (name, ""))
        if at < len(entries) and entries[at][0] == name:
            return entries[at][1]
        return None


@dataclass(frozen=True)
class Listing:
    """Directory *path* of a :class:`DirIndex`, sub-directories first, then files, by name: sliced, never built whole."""

    index: DirIndex
    path: str

    def __len__(self) -> int:
        return self.index.listing_size(self.path)

    def __getitem__(self, index: slice) -> list[TreeEntry]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("A directory listing is read by slices.")
        start, stop, _ = index.indices(len(self))
        return self.index.listing(self.path, offset=start, limit=max(0, stop - start))


class _IndexCache:
    """The last few directory indexes this process built, by snapshot id."""

    def __init__(self, size: int = 8) -> None:
        self._items: OrderedDict[str, DirIndex] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, snapshot_id: str) -> DirIndex | None:
        with self._lock:
            found = self._items.get(snapshot_id)
            if found is not None:
                self._items.move_to_end(snapshot_id)
            return found

    def put(self, snapshot_id: str, index: DirIndex) -> None:
        with self._lock:
            self._items[snapshot_id] = index
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_INDEXES = _IndexCache()


def dir_index(commit_id: str) -> DirIndex:
    """Return the directory index of *commit_id*'s tree (one query when this process has built it before)."""
    snapshot_id = snapshot_ids_of([commit_id]).get(commit_id)
    if snapshot_id is None:
        return DirIndex.of({})
    index = _INDEXES.get(snapshot_id)
    if index is None:
        index = DirIndex.of(load_manifest(snapshot_id))
        _INDEXES.put(snapshot_id, index)
    return index


def tree_listing(commit_id: str, path: str) -> Listing:
    """Return directory *path* of *commit_id*'s tree, lazily sliced; NotFound when *path* is a file or nothing."""
    index = dir_index(commit_id)
    if not index.is_dir(path) and index.file(path) is not None:
        raise NotFound(f"{path!r} is a file, not a directory; read it through raw/.")
    return index.entries(path)


def file_at(commit_id: str, path: str) -> str:
    """Return the object id of file *path* in *commit_id*'s tree; NotFound when it is a directory or nothing."""
    index = dir_index(commit_id)
    object_id = index.file(path) if path else None
    if object_id is not None:
        return object_id
    if path and index.is_dir(path):
        raise NotFound(f"{path!r} is a directory; list it through tree/.")
    raise NotFound(f"No file {path!r} at this ref.")


def fill_sizes(entries: Iterable[TreeEntry]) -> None:
    """Set the size of every file entry from its object row, in one query (directories have none)."""
    files = [(e, e.object_id) for e in entries if e.object_id]
    sizes = object_sizes(oid for _, oid in files)
    for entry, oid in files:
        entry.size = sizes.get(oid)


# --- history: the log of a commit, filtered by path or not ----------------------------------------


class _PairCache:
    """{(snapshot id, parent snapshot id): the paths that differ} for pairs this process has compared.

    Snapshots never change, so an entry never goes stale. Most pairs are
    answered by their stored delta (cheap); a checkpoint against its parent
    costs two rebuilt manifests, which is what this cache saves the next time.
    """

    def __init__(self, size: int = 50_000) -> None:
        self._items: OrderedDict[tuple[str, str | None], frozenset[str]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get_many(self, pairs: Iterable[tuple[str, str | None]]) -> dict[tuple[str, str | None], frozenset[str]]:
        with self._lock:
            return {pair: self._items[pair] for pair in pairs if pair in self._items}

    def put_many(self, found: Mapping[tuple[str, str | None], Iterable[str]]) -> None:
        with self._lock:
            for pair, paths in found.items():
                self._items[pair] = frozenset(paths)
                self._items.move_to_end(pair)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_PAIRS = _PairCache()


def _changes_of(pairs: Sequence[tuple[str, str | None]]) -> dict[tuple[str, str | None], frozenset[str]]:
    """Return the changed paths of each (snapshot, parent snapshot) pair: remembered ones, then the rest compared."""
    unique = list(dict.fromkeys(pairs))
    known = _PAIRS.get_many(unique)
    missing = [pair for pair in unique if pair not in known]
    if missing:
        found = changed_paths(missing)
        _PAIRS.put_many(found)
        known.update((pair, frozenset(paths)) for pair, paths in found.items())
    return known


class CommitLog:
    """The log of commit *head*, newest first; with *path*, only the commits whose tree under *path* differs from
    their first parent's. Both faces list history through it: the REST API's ``commits`` and the web's log pages.

    It is a sequence of Commit rows sliced lazily, as Django's and DRF's
    paginators take it, and :meth:`page` answers a page without knowing the
    length (what a page needs to say "next").

    Unfiltered, a length and a slice are one walk of the commit graph each
    (``repos.graph``). Filtered, one query reads the whole log (commit, first
    parent, snapshot); commits are then compared with their first parent newest
    first (``repos.manifests.changed_paths``: most from their stored delta, a
    checkpoint snapshot by rebuilding both manifests), each pair once per
    process (:class:`_PairCache`). :meth:`page` and a slice compare only as far
    as they reach, a chunk of ``CHUNK`` at a time, so a path changed often shows
    its first pages without comparing the whole history; the length compares
    every commit (in one pass: later lengths and pages of any log of the same
    history are then cheap).
    """

    CHUNK = 100  # commits compared at a time when only the first few matches are wanted

    def __init__(self, head: str | None, *, path: str = "") -> None:
        self.head = head
        self.path = path.strip("/")
        self.matched: list[str] = []  # filtered: the commits compared so far that touch the path, newest first
        self.scanned = 0  # filtered: how many commits have been compared
        self._count: int | None = None
        self._rows: list[tuple[str, str | None, str]] | None = None
        self._pairs: list[tuple[str, str | None]] = []

    @property
    def total(self) -> int | None:
        """How many commits the log holds, once known (unfiltered: counted; filtered: every commit compared)."""
        if not self.path:
            return self._count
        return len(self.matched) if self._rows is not None and self.scanned >= len(self._rows) else None

    def __len__(self) -> int:
        if self.head is None:
            return 0
        if self.path:
            self.scan()
            return len(self.matched)
        if self._count is None:
            self._count = graph.log_count(self.head)
        return self._count

    def count(self) -> int:
        return len(self)

    def __getitem__(self, index: slice) -> list[Commit]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("A commit log is read by slices.")
        start, stop = index.start or 0, index.stop
        if start < 0 or stop is None or stop < 0:  # counted from the end: the length is needed
            start, stop, _ = index.indices(len(self))
        return _commit_rows(self._ids(start, stop))

    def page(self, number: int, per_page: int) -> tuple[list[Commit], bool]:
        """Return (the Commit rows of page *number*, counted from 1, and whether a later page exists)."""
        start = (max(number, 1) - 1) * per_page
        ids = self._ids(start, start + per_page + 1)
        return _commit_rows(ids[:per_page]), len(ids) > per_page

    def scan(self, until: int | None = None) -> None:
        """Compare commits, newest first, until *until* of them touch the path (without *until*: all of them)."""
        rows, pairs = self._log()
        while self.scanned < len(rows) and (until is None or len(self.matched) < until):
            stop = len(rows) if until is None else self.scanned + self.CHUNK
            chunk = pairs[self.scanned : stop]
            changed = _changes_of(chunk)
            for (commit_id, _, _), pair in zip(rows[self.scanned : stop], chunk, strict=True):
                if any(is_under(p, self.path) for p in changed.get(pair, ())):
                    self.matched.append(commit_id)
            self.scanned = min(stop, len(rows))

    def _ids(self, start: int, stop: int) -> list[str]:
        """Return the ids of the log from position *start* to *stop*, newest first."""
        if self.head is None or stop <= start:
            return []
        if not self.path:
            return graph.log_page(self.head, offset=start, limit=stop - start)
        self.scan(until=stop)
        return self.matched[start:stop]

    def _log(self) -> tuple[list[tuple[str, str | None, str]], list[tuple[str, str | None]]]:
        """Return the whole log's (commit, first parent, snapshot) rows and (snapshot, parent snapshot) pairs."""
        if self._rows is None:
            self._rows = graph.log_rows(self.head) if self.head else []
            snapshot_of = {commit_id: snapshot_id for commit_id, _, snapshot_id in self._rows}
            self._pairs = [(sid, snapshot_of.get(parent) if parent else None) for _, parent, sid in self._rows]
        return self._rows, self._pairs


def _commit_rows(ids: list[str]) -> list[Commit]:
    """Return the Commit rows of *ids*, in that order (one query)."""
    rows = commits_by_id(ids)
    return [rows[cid] for cid in ids if cid in rows]


# --- diffs and blob text --------------------------------------------------------------------------


def read_blobs_by_id(object_ids: Sequence[str]) -> dict[str, bytes]:
    """Return {object_id: verified bytes}; every blob is read from its cache row or once from its pack."""
    ids = list(dict.fromkeys(object_ids))
    if not ids:
        return {}
    return dict(read_blobs(plan_blob_reads(ids)))


def as_text(raw: bytes) -> str | None:
    """Return *raw* as text when it is UTF-8 without NUL bytes, else None (a binary file)."""
    if b"\x00" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass
class FileChange:
    """One changed path of a commit or comparison, with its diff when both sides are small text."""

    path: str
    status: str  # "added", "modified" or "removed"
    old_id: str | None
    new_id: str | None
    old_size: int | None = None
    new_size: int | None = None
    diff: list[str] | None = None  # unified diff lines, without the ---/+++ header
    binary: bool = False
    too_large: bool = False  # a side is over DIFF_MAX_BYTES, or the page's diff budget could not pay for it
    truncated: bool = False

    @property
    def additions(self) -> int:
        return sum(1 for line in self.diff or () if line.startswith("+"))

    @property
    def deletions(self) -> int:
        return sum(1 for line in self.diff or () if line.startswith("-"))


def file_changes(
    changes: ManifestDiff,
    old: dict[str, str],
    new: dict[str, str],
    *,
    limit: int = 100,
    diff_limit: int = 40,
) -> tuple[list[FileChange], int]:
    """Return (the first *limit* changed paths with sizes, and diffs for the first *diff_limit* text files; total).

    Object sizes come in one query and the blobs to diff are read in one plan,
    so the cost follows what the page shows, not the size of the change. The
    diffs share one :class:`DiffBudget`, each file at most half of what is
    left: a diff it cannot pay for is marked ``too_large``, so a page's CPU
    time is bounded whatever the files hold.
    """
    rows = [(p, "added") for p in changes.added]
    rows += [(p, "modified") for p in changes.modified]
    rows += [(p, "removed") for p in changes.removed]
    rows.sort()
    total = len(rows)
    shown = [FileChange(p, s, old.get(p), new.get(p)) for p, s in rows[:limit]]
    sizes = object_sizes(oid for c in shown for oid in (c.old_id, c.new_id) if oid)
    to_read: list[str] = []
    for change in shown:
        change.old_size = sizes.get(change.old_id) if change.old_id else None
        change.new_size = sizes.get(change.new_id) if change.new_id else None
        if max(change.old_size or 0, change.new_size or 0) > DIFF_MAX_BYTES:
            change.too_large = True
        elif _REFUSED_DIFFS.refused(_pair(change), PAGE_DIFF_UNITS // 2):  # too costly for the most a file gets
            change.too_large = True  # known without reading either blob
        elif len(to_read) < diff_limit * 2:
            to_read += [oid for oid in (change.old_id, change.new_id) if oid]
    blobs = read_blobs_by_id(to_read)
    budget = DiffBudget()
    for change in shown:
        if change.too_large or not all(oid in blobs for oid in (change.old_id, change.new_id) if oid):
            continue
        before = as_text(blobs[change.old_id]) if change.old_id else ""
        after = as_text(blobs[change.new_id]) if change.new_id else ""
        if before is None or after is None:
            change.binary = True
            continue
        share, pair = budget.share(), _pair(change)
        if _REFUSED_DIFFS.refused(pair, share.units):  # the same two blobs were already too costly for as much
            change.too_large = True
            continue
        diff = unified_diff(before.splitlines(), after.splitlines(), share, max_lines=DIFF_MAX_LINES)
        if diff is None:
            change.too_large = True
            if share.units < 0:  # refused for its units, not for a deadline a busy moment may have cut short
                _REFUSED_DIFFS.remember(pair, share.granted)
            continue
        change.diff, change.truncated = diff.lines, diff.truncated
    return shown, total


def _pair(change: FileChange) -> tuple[str, str]:
    """The two blobs a change's diff compares, as :class:`RefusedDiffs` remembers them."""
    return change.old_id or "", change.new_id or ""


class RefusedDiffs:
    """Pairs of blobs whose diff a budget could not pay for, and the most units it was refused with.

    Two blobs never change, so a diff refused with N units is refused again
    with N or fewer without searching: a page reloaded (or requested by many
    at once) pays for its costly diffs once per process.
    """

    def __init__(self, max_items: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._max_items = max_items
        self._lock = threading.Lock()

    def refused(self, pair: tuple[str, str], units: int) -> bool:
        with self._lock:
            return self._items.get(pair, -1) >= units

    def remember(self, pair: tuple[str, str], units: int) -> None:
        with self._lock:
            self._items[pair] = max(units, self._items.get(pair, 0))
            self._items.move_to_end(pair)
            while len(self._items) > self._max_items:
                self._items.popitem(last=False)


_REFUSED_DIFFS = RefusedDiffs()


@dataclass
class CommitDiff:
    """What a commit changed against its first parent (everything is added for a root commit), with both manifests."""

    changes: ManifestDiff
    old: dict[str, str]
    new: dict[str, str]


def commit_diff(commit: Commit) -> CommitDiff:
    """Return what *commit* changed against its first parent, each manifest loaded once (one diff for both faces)."""
    parent = commit.parent_ids[0] if commit.parent_ids else None
    manifests = manifests_of_commits([commit.commit_id, *([parent] if parent else [])])
    old = manifests.get(parent, {}) if parent else {}
    new = manifests.get(commit.commit_id, {})
    return CommitDiff(changes=diff_of(old, new), old=old, new=new)


@dataclass
class BranchDiff:
    """How *head* differs from *base* since they forked, read with each manifest loaded once.

    ``ahead`` lists head's commits base lacks, newest first; ``changes`` go from
    the fork point (the merge base) to head, with both manifests kept for
    :func:`file_changes`; ``conflicts`` (only when asked) are the paths merging
    head into base would conflict on, as a proposal's merge would find them.
    """

    base: str | None
    head: str
    merge_base: str | None
    ahead: list[str]
    behind_by: int
    changes: ManifestDiff
    old: dict[str, str]
    new: dict[str, str]
    conflicts: list[dict[str, str]] = field(default_factory=list)


def branch_diff(base: str | None, head: str, *, conflicts: bool = False, count_behind: bool = True) -> BranchDiff:
    """Return how commit *head* differs from commit *base* (None: a branch that does not exist yet).

    The REST API's compare and the web's compare and proposal pages all read it.
    Without *count_behind*, ``behind_by`` is only 1 or 0: whether base has commits head lacks.
    """
    fork = graph.merge_base(base, head) if base else None
    ahead = list(reversed(graph.commits_between([head], [base] if base else [])))
    if not base:
        behind = 0
    elif count_behind:
        behind = len(graph.commits_between([base], [head]))
    else:  # only whether base moved since the fork: base is the merge base exactly when it did not
        behind = 0 if fork == base else 1
    wanted = [c for c in (fork, head, base if conflicts else None) if c]
    manifests = manifests_of_commits(wanted)
    old = manifests.get(fork, {}) if fork else {}
    new = manifests.get(head, {})
    found: list[dict[str, str]] = []
    if conflicts and base and behind and ahead:  # both sides moved since the fork: a three-way merge decides
        try:
            merge_manifests(old, manifests.get(base, {}), new)
        except MergeConflict as exc:
            found = list(exc.data.get("conflicts") or [])
    return BranchDiff(
        base=base,
        head=head,
        merge_base=fork,
        ahead=ahead,
        behind_by=behind,
        changes=diff_of(old, new),
        old=old,
        new=new,
        conflicts=found,
    )


def diff_of(old: dict[str, str], new: dict[str, str]) -> ManifestDiff:
    """Return what changed from manifest *old* to manifest *new* (``diff_manifests``' answer, in one pass each way)."""
    added, modified = [], []
    for path, object_id in new.items():
        before = old.get(path)
        if before is None:
            added.append(path)
        elif before != object_id:
            modified.append(path)
    removed = [path for path in old if path not in new] if len(old) + len(added) != len(new) else []
    return ManifestDiff(added=sorted(added), modified=sorted(modified), removed=sorted(removed))


# --- the caches of this process -------------------------------------------------------------------


def clear_caches() -> None:
    """Forget every directory index and compared commit this process keeps (a cold start, as tests measure it)."""
    _INDEXES.clear()
    _PAIRS.clear()
