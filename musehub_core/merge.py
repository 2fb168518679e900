"""The three-way merge of snapshot manifests ({path: object_id}), path by path.

Pure functions: no database, no storage, no Django. The hub's proposals
(``repos.services.proposals``) and the reference client's ``merge``
(``musehub_client.merging``) both merge with these, so a tree that merges
cleanly on one merges cleanly, to the same manifest, on the other. ``ours`` is the side being merged into
(a proposal's target branch), ``theirs`` the side being merged (its source).
A path takes the side that changed it since the merge base; a path both sides
changed the same way merges cleanly. Anything else is a conflict, reported with
one of these kinds:

- ``both_modified``: present in the base, changed on both sides to different content;
- ``both_added``: absent from the base, added on both sides with different content;
- ``modified_deleted``: changed on our side, deleted on theirs;
- ``deleted_modified``: deleted on our side, changed on theirs;
- ``file_directory``: the merged tree would hold the path both as a file and as
  a directory (one side adds ``a`` while the other adds ``a/b``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from musehub_core.errors import MergeConflict
from musehub_core.manifests import directories_of

BOTH_MODIFIED = "both_modified"
BOTH_ADDED = "both_added"
MODIFIED_DELETED = "modified_deleted"
DELETED_MODIFIED = "deleted_modified"
FILE_DIRECTORY = "file_directory"
CONFLICT_KINDS = (BOTH_MODIFIED, BOTH_ADDED, MODIFIED_DELETED, DELETED_MODIFIED, FILE_DIRECTORY)


def _conflict_kind(base: str | None, ours: str | None, theirs: str | None) -> str:
    if base is None:
        return BOTH_ADDED
    if ours is None:
        return DELETED_MODIFIED
    if theirs is None:
        return MODIFIED_DELETED
    return BOTH_MODIFIED


@dataclass
class ThreeWay:
    """What merging two manifests gives, conflicts included.

    ``merged`` holds every path that merged cleanly (for a ``file_directory``
    conflict, the file too); the other conflicting paths are left out of it.
    ``conflicts`` is a list of ``{"path", "kind"}`` sorted by path.
    """

    merged: dict[str, str] = field(default_factory=dict)
    conflicts: list[dict[str, str]] = field(default_factory=list)


def three_way(base: Mapping[str, str], ours: Mapping[str, str], theirs: Mapping[str, str]) -> ThreeWay:
    """Return the three-way merge of *ours* and *theirs* against their merge base *base*, conflicts listed."""
    outcome = ThreeWay()
    for path in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        if o == t:
            result = o  # unchanged, or the same change (or deletion) on both sides
        elif o == b:
            result = t  # only their side changed it
        elif t == b:
            result = o  # only our side changed it
        else:
            outcome.conflicts.append({"path": path, "kind": _conflict_kind(b, o, t)})
            continue
        if result is not None:
            outcome.merged[path] = result
    conflicted = {c["path"] for c in outcome.conflicts}
    for path in sorted(set(directories_of(outcome.merged)) & set(outcome.merged)):
        if path not in conflicted:
            outcome.conflicts.append({"path": path, "kind": FILE_DIRECTORY})
    outcome.conflicts.sort(key=lambda c: c["path"])
    return outcome


def merge_manifests(
    base: Mapping[str, str],
    ours: Mapping[str, str],
    theirs: Mapping[str, str],
) -> dict[str, str]:
    """Return the manifest that merges *ours* and *theirs* against their merge base *base*.

    Raises MergeConflict (``conflicts``: a list of ``{"path", "kind"}`` sorted
    by path) when any path conflicts; nothing is partially merged.
    """
    outcome = three_way(base, ours, theirs)
    if outcome.conflicts:
        raise MergeConflict(describe_conflicts(outcome.conflicts), conflicts=outcome.conflicts)
    return outcome.merged


def describe_conflicts(conflicts: list[dict[str, str]], limit: int = 5) -> str:
    """Return a sentence naming the first *limit* conflicting paths and their kinds."""
    shown = ", ".join(f"{c['path']} ({c['kind']})" for c in conflicts[:limit])
    more = f" and {len(conflicts) - limit} more" if len(conflicts) > limit else ""
    noun = "path conflicts" if len(conflicts) == 1 else "paths conflict"
    return (
        f"{len(conflicts)} {noun}: {shown}{more}. "
        "Merge the branches locally (`musehub merge BRANCH` in a clone), fix the marked files and push."
    )
