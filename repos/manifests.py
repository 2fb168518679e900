"""Snapshot manifests: the msgpack ``{path: object_id}`` kept in ``Snapshot.manifest_blob``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgpack

from .models import Snapshot


def encode_manifest(manifest: Mapping[str, str]) -> bytes:
    """Return the stored form of *manifest*: msgpack with paths in sorted order."""
    return msgpack.packb(dict(sorted(manifest.items())), use_bin_type=True)


def decode_manifest(blob: bytes | memoryview | None) -> dict[str, str]:
    if not blob:
        return {}
    return msgpack.unpackb(bytes(blob), raw=False)


def directories_of(paths: Iterable[str]) -> list[str]:
    """Return every directory that holds a path of *paths*, sorted ('' is the root, omitted)."""
    found: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            found.add("/".join(parts[:depth]))
    return sorted(found)


def load_manifests(snapshot_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Return {snapshot_id: manifest} for the given snapshots, in one query per 10,000 ids."""
    ids = list(dict.fromkeys(snapshot_ids))
    manifests: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 10_000):
        rows = Snapshot.objects.filter(snapshot_id__in=ids[start : start + 10_000]).values_list(
            "snapshot_id", "manifest_blob"
        )
        manifests.update((sid, decode_manifest(blob)) for sid, blob in rows)
    return manifests


def load_manifest(snapshot_id: str) -> dict[str, str]:
    return load_manifests([snapshot_id]).get(snapshot_id, {})


@dataclass(frozen=True)
class ManifestDiff:
    """The paths one manifest adds, modifies and removes relative to another, each sorted."""

    added: list[str]
    modified: list[str]
    removed: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "modified": self.modified, "removed": self.removed}


def diff_manifests(old: Mapping[str, str], new: Mapping[str, str]) -> ManifestDiff:
    """Return what changed from *old* to *new*: added, modified (new object id) and removed paths."""
    return ManifestDiff(
        added=sorted(set(new) - set(old)),
        modified=sorted(p for p in set(new) & set(old) if new[p] != old[p]),
        removed=sorted(set(old) - set(new)),
    )


def is_under(path: str, prefix: str) -> bool:
    """Return True when *path* is *prefix* itself or lies inside directory *prefix* ('' matches everything)."""
    prefix = prefix.strip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")
