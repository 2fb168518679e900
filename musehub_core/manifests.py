"""Manifests in memory: path rules, diffs, folders and snapshot deltas (docs/wire.md §2, §2.1).

A manifest is ``{path: object_id}``. A delta names a base manifest and says
which paths to ``set`` and which to ``delete``; :func:`make_delta` builds one
and :func:`apply_delta` rebuilds the manifest from it, checking the rules of
§2.1 (disjoint ``set``/``delete``, every deleted path in the base, paths that
follow the manifest path rules). Where a manifest is stored is the hub's
business (``repos.manifests``); this module only computes.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from musehub_core.errors import MalformedPack, UnsafePath
from musehub_core.ids import PREFIX, compute_snapshot_id, hex_of, snapshot_entries
from musehub_core.native import speedups

MAX_PATH_BYTES = 4096


def validate_path(path: object, where: str) -> str:
    """Return *path* when it is a relative POSIX path, else raise MalformedPack naming it."""
    if not isinstance(path, str) or not path:
        raise MalformedPack(f"{where}: a manifest path must be a non-empty string.")
    problem = None
    if path.startswith("/"):
        problem = "is absolute"
    elif "\0" in path:
        problem = "contains NUL"
    elif "\\" in path:
        problem = "contains a backslash"
    elif len(path.encode()) > MAX_PATH_BYTES:
        problem = f"is longer than {MAX_PATH_BYTES} bytes"
    else:
        for segment in path.split("/"):
            if segment in ("", ".", ".."):
                problem = "has an empty, '.' or '..' segment"
                break
    if problem:
        raise MalformedPack(f"{where}: manifest path {path!r} {problem}.")
    return path


# Characters a hub refuses in new paths although docs/wire.md §2's rules allow them: C0 and C1 controls (a CR, LF,
# ESC or BEL in a name breaks terminals, logs, links and the files a clone writes) and Unicode's bidirectional
# controls (U+202E shows "gpj.exe" as "exe.jpg"); U+2028 and U+2029 break lines as LF does.
UNSAFE_PATH_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def unsafe_paths(paths: Iterable[str]) -> list[str]:
    """Return those of *paths* that hold a character of :data:`UNSAFE_PATH_CHARACTERS` (one search when none do)."""
    paths = list(paths)
    if not UNSAFE_PATH_CHARACTERS.search("/".join(paths)):
        return []
    return [path for path in paths if UNSAFE_PATH_CHARACTERS.search(path)]


def refuse_unsafe_paths(paths: Iterable[str], where: str) -> None:
    """Raise UnsafePath naming the first of *paths* that holds a control or bidirectional character."""
    found = unsafe_paths(paths)
    if found:
        others = f" ({len(found) - 1} more path(s) of it do too)" if len(found) > 1 else ""
        raise UnsafePath(
            f"{where}: path {found[0]!r} holds a control or bidirectional character{others}; rename it.",
            path=found[0],
            count=len(found),
        )


def all_paths_valid(paths: Sequence[object]) -> bool:
    """Return True when validate_path takes every one of *paths* (a few substring searches over them all).

    False says only that some path is refused: :func:`validate_path` on each names it.
    """
    if not _all_str(paths):
        return False
    # Each path framed by '/' on both sides and the frames joined by NUL (which no valid path holds): a
    # leading '/' or an empty, '.' or '..' segment then shows as '//', '/./' or '/../' (never across frames).
    framed = "/" + "/\0/".join(paths) + "/"
    if framed.count("\0") != max(len(paths) - 1, 0) or "\\" in framed:
        return False
    if not paths or "//" in framed or "/./" in framed or "/../" in framed:
        return not paths
    return all(len(p) * 4 <= MAX_PATH_BYTES or len(p.encode()) <= MAX_PATH_BYTES for p in paths)


def _all_str(values: Sequence[object]) -> TypeGuard[Sequence[str]]:
    return all(type(v) is str for v in values)


def directories_of(paths: Iterable[str]) -> list[str]:
    """Return every directory that holds a path of *paths*, sorted ('' is the root, omitted)."""
    found: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            found.add("/".join(parts[:depth]))
    return sorted(found)


def is_under(path: str, prefix: str) -> bool:
    """Return True when *path* is *prefix* itself or lies inside directory *prefix* ('' matches everything)."""
    prefix = prefix.strip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class ManifestDiff:
    """The paths one manifest adds, modifies and removes relative to another, each sorted."""

    added: list[str]
    modified: list[str]
    removed: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "modified": self.modified, "removed": self.removed}

    @property
    def paths(self) -> list[str]:
        """Every path that changed, sorted."""
        return sorted([*self.added, *self.modified, *self.removed])


def diff_manifests(old: Mapping[str, str], new: Mapping[str, str]) -> ManifestDiff:
    """Return what changed from *old* to *new*: added, modified (new object id) and removed paths."""
    return ManifestDiff(
        added=sorted(set(new) - set(old)),
        modified=sorted(p for p in set(new) & set(old) if new[p] != old[p]),
        removed=sorted(set(old) - set(new)),
    )


# --- deltas (docs/wire.md §2.1) ----------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestDelta:
    """A manifest written as changes to a base: paths to write over it and paths to drop."""

    set: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.set) + len(self.delete)


def make_delta(base: Mapping[str, str], new: Mapping[str, str]) -> ManifestDelta:
    """Return the delta that turns *base* into *new* (``set`` sorted by path, ``delete`` sorted).

    Two Python loops: 3.5-6 ms for 25,000 paths. A C twin saved 1-2 ms of that,
    too little to show in a whole push (bench/results/2026-12-08-native-c.md).
    """
    changed = {path: oid for path, oid in new.items() if base.get(path) != oid}
    deleted = [p for p in base if p not in new]
    return ManifestDelta(set=dict(sorted(changed.items())), delete=sorted(deleted))


def delta_pays(delta: ManifestDelta, full: Mapping[str, str]) -> bool:
    """Return True when sending *delta* is smaller than sending the full manifest *full*."""
    return len(delta) < len(full)


def apply_delta(
    base: Mapping[str, str], delta: ManifestDelta, *, where: str = "snapshot", in_place: bool = False
) -> dict[str, str]:
    """Return *base* without ``delta.delete``, then with ``delta.set`` written over it.

    With *in_place* (and a dict *base*) the base itself is edited and returned,
    which saves a copy per delta when a chain is replayed. Raises MalformedPack
    naming *where* when a deleted path is not in the base or a path is both set
    and deleted.
    """
    manifest = base if in_place and isinstance(base, dict) else dict(base)
    for path in delta.delete:
        if path in delta.set:
            raise MalformedPack(f"{where}: path {path!r} is both in 'set' and in 'delete'.")
        if manifest.pop(path, None) is None:
            raise MalformedPack(f"{where}: 'delete' names {path!r}, which its base does not hold.")
    manifest.update(delta.set)
    return manifest


def delta_of(snapshot: Mapping[str, Any]) -> ManifestDelta | None:
    """Return the delta a normalized SnapshotDict carries, or None for a full one."""
    if "base" not in snapshot:
        return None
    return ManifestDelta(set=dict(snapshot.get("set") or {}), delete=list(snapshot.get("delete") or []))


def snapshot_dict(
    snapshot_id: str,
    manifest: Mapping[str, str],
    *,
    base: tuple[str, Mapping[str, str]] | None = None,
    created_at: str = "",
) -> dict[str, Any]:
    """Return the SnapshotDict to send for *manifest*: a delta against *base* (id, manifest) when that is smaller.

    Every sender (push, fetch, merges) builds its snapshot dicts here.
    """
    if base is not None:
        delta = make_delta(base[1], manifest)
        if delta_pays(delta, manifest):
            return {
                "snapshot_id": snapshot_id,
                "base": base[0],
                "set": delta.set,
                "delete": delta.delete,
                "created_at": created_at,
            }
    return {"snapshot_id": snapshot_id, "manifest": dict(manifest), "created_at": created_at}


# --- trees: a manifest with its snapshot id kept cheap to recompute --------------------------------


class Tree:
    """A manifest kept ready for its snapshot id to be checked after a delta (docs/wire.md §1).

    Where :mod:`musehub_core._speedups` was built, the id's bytes come from the
    manifest itself in a few milliseconds, so a tree is only its manifest.
    Without it, the tree also keeps its sorted ``path NUL hex`` entries, and
    :meth:`apply` edits only the entries that changed: checking a snapshot id
    then costs one join and one hash, not a string per path.
    """

    __slots__ = ("manifest", "_entries")

    def __init__(self, manifest: dict[str, str], entries: list[str] | None) -> None:
        self.manifest = manifest
        self._entries = entries

    @classmethod
    def of(cls, manifest: Mapping[str, str]) -> Tree:
        return cls(dict(manifest), None if speedups is not None else snapshot_entries(manifest))

    def apply(self, delta: ManifestDelta, *, where: str = "snapshot") -> Tree:
        """Return the tree *delta* makes from this one (MalformedPack naming *where* when it does not apply)."""
        manifest = apply_delta(self.manifest, delta, where=where)
        if self._entries is None:
            return Tree(manifest, None)
        entries = list(self._entries)
        for path in [*delta.delete, *(p for p in delta.set if p in self.manifest)]:
            entry = f"{path}\0{hex_of(self.manifest[path])}"
            del entries[bisect_left(entries, entry)]
        for path, oid in delta.set.items():
            insort(entries, f"{path}\0{hex_of(oid)}")
        return Tree(manifest, entries)

    def snapshot_id(self) -> str:
        if self._entries is None:
            return compute_snapshot_id(self.manifest)
        return PREFIX + hashlib.sha256("\0".join(self._entries).encode()).hexdigest()


# Returns the bases it holds among the ids asked for: a manifest, or a Tree the caller kept (not rebuilt).
BaseLookup = Callable[[list[str]], Mapping[str, "Mapping[str, str] | Tree"]]


def rebuild_snapshots(
    snapshots: Sequence[Mapping[str, Any]], lookup: BaseLookup, *, positions: Sequence[int] | None = None
) -> Iterator[tuple[Mapping[str, Any], Tree]]:
    """Yield (snapshot dict, its full tree) for each snapshot of a pack, in pack order, ids verified.

    A delta's ``set`` comes back without entries its base already holds, so
    what is stored and listed as changed is only what changed.

    A delta's base is a snapshot earlier in *snapshots* or one *lookup* returns
    (called once, with every base the pack does not hold itself; as a manifest,
    or as a Tree it kept from an earlier rebuild). Trees are kept
    only while a later delta still needs them, so memory stays a few trees
    whatever the history's length. Raises MalformedPack naming the snapshot:
    unknown base, a deleted path its base lacks, set/delete overlap, or an id
    that does not match the rebuilt manifest. *positions* are the snapshots'
    indexes in the pack as sent, for messages, when the caller reordered them.
    """
    in_pack = {s["snapshot_id"] for s in snapshots}
    uses = Counter(s["base"] for s in snapshots if "base" in s)
    outside = sorted(b for b in uses if b not in in_pack)
    external = dict(lookup(outside)) if outside else {}
    trees: dict[str, Tree] = {}
    seen: set[str] = set()
    for index, snap in enumerate(snapshots):
        sid = snap["snapshot_id"]
        where = f"snapshots[{positions[index] if positions else index}] ({sid})"
        delta = delta_of(snap)
        if delta is None:
            tree = Tree.of(snap["manifest"])
        else:
            base_id = snap["base"]
            base = trees.get(base_id)
            if base is None:
                if base_id in in_pack and base_id not in seen:
                    raise MalformedPack(f"{where}: its base {base_id} comes later in the pack; a base must come first.")
                known = external.get(base_id)
                if known is None:
                    raise MalformedPack(f"{where}: its base {base_id} is not in the pack nor held by the receiver.")
                base = trees[base_id] = known if isinstance(known, Tree) else Tree.of(known)
            tree = base.apply(delta, where=where)
            unchanged = [path for path, oid in delta.set.items() if base.manifest.get(path) == oid]
            if unchanged:  # a delta may name entries its base already has: keep only what it changes
                kept = {path: oid for path, oid in delta.set.items() if base.manifest.get(path) != oid}
                snap = {**snap, "set": kept}
            uses[base_id] -= 1
            if uses[base_id] <= 0:
                trees.pop(base_id, None)
        actual = tree.snapshot_id()
        if actual != sid:
            raise MalformedPack(f"{where}: id {sid} does not match its manifest (expected {actual}).")
        seen.add(sid)
        if uses.get(sid, 0) > 0:
            trees[sid] = tree
        yield snap, tree
