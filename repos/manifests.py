"""Snapshot manifests: the msgpack ``{path: object_id}`` kept in ``Snapshot.manifest_blob``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgpack

from .models import Snapshot


def encode_manifest(manifest: Mapping[str, str]) -> bytes:
    """Return the stored form of *manifest*: msgpack with paths in sorted order."""
    return msgpack.packb(dict(sorted(manifest.items())), use_bin_type=True)


def decode_manifest(blob: bytes | memoryview | None) -> dict[str, str]:
    if not blob:
        return {}
    return msgpack.unpackb(bytes(blob), raw=False)


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
