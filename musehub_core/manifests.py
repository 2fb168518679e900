"""Manifests in memory: path rules, diffs, folders and snapshot deltas (wire.md §2, §2.1).

A manifest is ``{path: object_id}``. A delta names a base manifest and says
which paths to ``set`` and which to ``delete``; :func:`make_delta` builds one
and :func:`apply_delta` rebuilds the manifest from it, checking the rules of
§2.1 (disjoint ``set``/``delete``, every deleted path in the base, paths that
follow the manifest path rules). Where a manifest is stored is the hub's
business (``repos.manifests``); this module only computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from musehub_core.errors import MalformedPack

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


# --- deltas (wire.md §2.1) ----------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestDelta:
    """A manifest written as changes to a base: paths to write over it and paths to drop."""

    set: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.set) + len(self.delete)


def make_delta(base: Mapping[str, str], new: Mapping[str, str]) -> ManifestDelta:
    """Return the delta that turns *base* into *new* (``set`` sorted by path, ``delete`` sorted)."""
    changed = {path: oid for path, oid in new.items() if base.get(path) != oid}
    return ManifestDelta(set=dict(sorted(changed.items())), delete=sorted(p for p in base if p not in new))


def delta_pays(delta: ManifestDelta, full: Mapping[str, str]) -> bool:
    """Return True when sending *delta* is smaller than sending the full manifest *full*."""
    return len(delta) < len(full)


def apply_delta(base: Mapping[str, str], delta: ManifestDelta, *, where: str = "snapshot") -> dict[str, str]:
    """Return *base* without ``delta.delete``, then with ``delta.set`` written over it.

    Raises MalformedPack naming *where* when a deleted path is not in the base or
    a path is both set and deleted.
    """
    manifest = dict(base)
    for path in delta.delete:
        if path in delta.set:
            raise MalformedPack(f"{where}: path {path!r} is both in 'set' and in 'delete'.")
        if manifest.pop(path, None) is None:
            raise MalformedPack(f"{where}: 'delete' names {path!r}, which its base does not hold.")
    manifest.update(delta.set)
    return manifest
