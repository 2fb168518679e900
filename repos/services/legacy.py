"""Move blobs stored under legacy per-object keys (``objects/…``) into mpacks and index them.

Older hubs wrote each blob to its own key, or recorded ``mpack://<key>``
without a byte-range index entry. Fetch needs every blob indexed (else 503),
so :func:`migrate_legacy_blobs` finds every Object row with no index entry and:

1. when its ``storage_uri`` names a pack that exists and holds it, indexes it
   in place (that pack is read once for all such objects, and verified);
2. otherwise reads its bytes from the legacy key (then its content cache),
   verifies them against the id, and writes them into new ``repack``-kind packs
   of at most *batch_blobs* blobs or *batch_bytes* stored bytes. Each pack is
   switched in by one transaction (index rows, ``storage_uri``).

Rows that are indexed but still carry a legacy ``storage_uri`` are relinked to
a pack that indexes them. With ``delete_legacy`` the per-object keys of every
blob moved in this run are deleted after its pack's switch, and any other
legacy key whose object is indexed is deleted once its copy in the pack has
been read back and verified. Keys of objects no row names are left alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from musehub_core.errors import MalformedPack
from musehub_core.ids import blob_id
from musehub_core.mpack import decode_blob, encode_blob, index_mpack
from repos.models import MPack, MPackIndex, MPackKind, Object
from repos.services.maintenance import CHUNK, Progress, chunks, maintenance_limits, no_progress
from repos.storage.backend import get_backend
from repos.storage.layout import MPACK_SCHEME, is_mpack_uri, mpack_of_uri, mpack_uri
from repos.storage.writer import PackBuilder, StoredBlob, new_mpack_row, record_index, record_mpack

DEFAULT_BATCH_BLOBS = 10_000
DEFAULT_BATCH_BYTES = 256 * 1024**2
_MAX_DECODED = 2**40


@dataclass
class MigrationReport:
    moved: int = 0
    indexed_in_place: int = 0
    relinked: int = 0
    mpacks: list[str] = field(default_factory=list)
    deleted_keys: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "indexed_in_place": self.indexed_in_place,
            "relinked": self.relinked,
            "mpacks": self.mpacks,
            "deleted_keys": self.deleted_keys,
            "problems": self.problems,
        }


def _index_in_place(by_pack: dict[str, list[str]], report: MigrationReport, progress: Progress) -> set[str]:
    """Index objects inside the packs their storage_uri names; return the ids that still need moving."""
    backend = get_backend()
    leftover: set[str] = set()
    with progress(total=len(by_pack), desc="index packs in place", unit="pack") as bar:
        for mpack_id, oids in sorted(by_pack.items()):
            bar.update()
            stream = backend.open_mpack(mpack_id)
            if stream is None or not MPack.objects.filter(mpack_id=mpack_id).exists():
                if stream is not None:
                    stream.close()
                leftover.update(oids)
                continue
            try:
                with stream:
                    contents = index_mpack(stream, limits=maintenance_limits(), verify=True)
            except MalformedPack:
                leftover.update(oids)
                continue
            if contents.digest != mpack_id:
                leftover.update(oids)
                continue
            held = {b.object_id: b for b in contents.blobs}
            blobs = [
                StoredBlob(oid, held[oid].size, held[oid].offset, held[oid].length, held[oid].encoding)
                for oid in oids
                if oid in held
            ]
            leftover.update(oid for oid in oids if oid not in held)
            with transaction.atomic():
                record_index(mpack_id, blobs)
            report.indexed_in_place += len(blobs)
    return leftover


def _flush(builder: PackBuilder, moved_keys: list[str], report: MigrationReport, delete_legacy: bool) -> None:
    """Write the batch's pack and switch its blobs to it; then, optionally, drop their legacy keys."""
    mpack_id, size, blobs = builder.write()
    with transaction.atomic():
        record_mpack(new_mpack_row(mpack_id, kind=MPackKind.REPACK, size=size, blobs=len(blobs)), repo_id=None)
        record_index(mpack_id, blobs)
        for batch in chunks([b.object_id for b in blobs], CHUNK):
            Object.objects.filter(object_id__in=batch).update(storage_uri=mpack_uri(mpack_id))
    report.mpacks.append(mpack_id)
    report.moved += len(blobs)
    if delete_legacy:
        backend = get_backend()
        for oid in moved_keys:
            backend.delete(oid)
            report.deleted_keys += 1


def _verified(oid: str, raw: bytes | None) -> bytes | None:
    return raw if raw is not None and blob_id(raw) == oid else None


def migrate_legacy_blobs(
    *,
    delete_legacy: bool = False,
    batch_blobs: int = DEFAULT_BATCH_BLOBS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    progress: Progress = no_progress,
) -> MigrationReport:
    """Index or move every blob that has no index entry; return what was done and what could not be.

    Raises StorageUnavailable when storage cannot be reached (batches already
    switched stay switched; rerun to continue).
    """
    report = MigrationReport()
    backend = get_backend()
    unindexed = Object.objects.filter(~Exists(MPackIndex.objects.filter(entity_id=OuterRef("pk"))))
    by_pack: dict[str, list[str]] = defaultdict(list)
    to_move: list[str] = []
    for oid, uri in unindexed.values_list("object_id", "storage_uri").iterator(chunk_size=CHUNK):
        if is_mpack_uri(uri):
            by_pack[mpack_of_uri(uri)].append(oid)
        else:
            to_move.append(oid)
    to_move.extend(sorted(_index_in_place(by_pack, report, progress)))

    with progress(total=len(to_move), desc="migrate legacy blobs", unit="blob") as bar:
        builder = PackBuilder()
        moved_keys: list[str] = []
        try:
            for batch in chunks(to_move, 1_000):
                caches = dict(
                    Object.objects.filter(object_id__in=batch, content_cache__isnull=False).values_list(
                        "object_id", "content_cache"
                    )
                )
                for oid in batch:
                    bar.update()
                    raw = _verified(oid, backend.get(oid))
                    from_key = raw is not None
                    if raw is None and oid in caches:
                        raw = _verified(oid, bytes(caches[oid]))
                    if raw is None:
                        report.problems.append(
                            {
                                "object_id": oid,
                                "message": f"object {oid} has no legacy key, cache or pack holding its correct bytes.",
                            }
                        )
                        continue
                    stored, encoding = encode_blob(raw)
                    builder.add(oid, stored, encoding, len(raw))
                    if from_key:
                        moved_keys.append(oid)
                    if len(builder) >= batch_blobs or builder.stored_bytes >= batch_bytes:
                        _flush(builder, moved_keys, report, delete_legacy)
                        builder.close()
                        builder, moved_keys = PackBuilder(), []
            if len(builder):
                _flush(builder, moved_keys, report, delete_legacy)
        finally:
            builder.close()

    relink = Object.objects.filter(Q(storage_uri__isnull=True) | ~Q(storage_uri__startswith=MPACK_SCHEME)).filter(
        Exists(MPackIndex.objects.filter(entity_id=OuterRef("pk")))
    )
    for batch in chunks(relink.values_list("object_id", flat=True).iterator(chunk_size=CHUNK), CHUNK):
        packs = dict(
            MPackIndex.objects.filter(entity_id__in=batch).order_by("-created_at").values_list("entity_id", "mpack_id")
        )
        with transaction.atomic():
            for oid, mpack_id in packs.items():
                Object.objects.filter(object_id=oid).update(storage_uri=mpack_uri(mpack_id))
        report.relinked += len(packs)

    if delete_legacy:
        report.deleted_keys += _sweep_legacy_keys(progress)
    return report


def _sweep_legacy_keys(progress: Progress) -> int:
    """Delete the legacy key of every indexed object whose copy in a pack reads back correctly."""
    backend = get_backend()
    deleted = 0
    keys = list(backend.list_objects())
    with progress(total=len(keys), desc="sweep legacy keys", unit="key") as bar:
        for batch in chunks(keys, CHUNK):
            bar.update(len(batch))
            rows = MPackIndex.objects.filter(
                entity_id__in=batch, offset__isnull=False, length__isnull=False, mpack_id__in=MPack.objects.values("pk")
            ).values_list("entity_id", "mpack_id", "offset", "length", "encoding")
            by_pack: dict[str, list[tuple[str, int, int, str]]] = defaultdict(list)
            for oid, mpack_id, offset, length, encoding in rows:
                if offset is not None and length is not None:  # as the query asked
                    by_pack[mpack_id].append((oid, offset, length, encoding or ""))
            safe: set[str] = set()
            for mpack_id, entries in by_pack.items():
                spans = backend.read_ranges(mpack_id, [(offset, length) for _, offset, length, _ in entries])
                if spans is None:
                    continue
                for oid, offset, length, encoding in entries:
                    try:
                        raw = decode_blob(spans[(offset, length)], encoding, max_bytes=_MAX_DECODED, where=oid)
                    except (MalformedPack, KeyError):
                        continue
                    if blob_id(raw) == oid:
                        safe.add(oid)
            for oid in sorted(safe):
                backend.delete(oid)
                deleted += 1
    return deleted
