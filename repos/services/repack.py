"""Repack: combine a repository's many small mpacks into one, the way git's geometric repack does.

Which packs (:func:`geometric_split`, documented in docs/maintenance.md): sort the
repository's push, server and repack packs that still hold indexed blobs by
size. Walking down from the biggest, the packs form a geometric progression
while each is at least twice the next smaller one; everything below the first
break is combined, and then any bigger pack smaller than twice the combined
size joins too (so the result restores the progression). A repository whose
packs already double in size each step is left alone, and one big pack is not
rewritten because small pushes landed next to it. ``all_packs`` combines
everything; ``max_packs`` caps how many of the smallest are combined in one
run, and the combined pack never exceeds ``MUSEHUB_MAX_PACK_BYTES``.

A push compacts on its own (:func:`compact_after_push`): once a repository has
more than ``MUSEHUB_AUTO_REPACK_PACKS`` live packs, the push that committed runs
the same geometric selection, so a busy repository keeps a handful of packs and
a clone reads few of them without anyone running ``musehub_repack``.

How (:func:`build_repack` then :func:`switch_repack`): each chosen pack is
read once as a stream; every blob's stored bytes are copied with their
encoding (verified against the id on the way) into a new ``repack`` pack.
Then one transaction inserts the new index rows, points ``Object.storage_uri``
at the new pack, and deletes the old index rows. Fetches keep working all
along: before the switch the old rows serve them, after it the new ones, and
the old packs stay in storage until ``musehub_gc`` finds them unneeded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef

from musehub_core.errors import MalformedPack
from musehub_core.mpack import decode_verified, encode_blob, index_mpack, skip_bytes
from repos.lookups import IdList
from repos.models import MPack, MPackIndex, MPackKind, Object, Repo
from repos.services.maintenance import CHUNK, Progress, chunks, maintenance_limits, no_progress
from repos.storage.backend import get_backend
from repos.storage.layout import mpack_uri
from repos.storage.reader import READ_BUFFER
from repos.storage.writer import PackBuilder, StoredBlob, new_mpack_row, record_index, record_mpack

log = logging.getLogger("musehub.repack")
REPACKABLE_KINDS = (MPackKind.PUSH, MPackKind.SERVER, MPackKind.REPACK)
SPLIT_FACTOR = 2


@dataclass(frozen=True)
class PackInfo:
    mpack_id: str
    kind: str
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"mpack_id": self.mpack_id, "kind": self.kind, "size_bytes": self.size_bytes}


@dataclass
class BuiltRepack:
    """A new pack written to storage but not yet switched in: the index still points at *sources*."""

    repo: Repo
    sources: list[PackInfo]
    mpack_id: str
    size: int
    blobs: list[StoredBlob]
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass
class RepackResult:
    repo: str
    sources: list[PackInfo] = field(default_factory=list)
    mpack_id: str | None = None
    size: int = 0
    blobs: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "sources": [p.as_dict() for p in self.sources],
            "mpack_id": self.mpack_id,
            "size": self.size,
            "blobs": self.blobs,
            "skipped": self.skipped,
        }


def geometric_split(sizes: Sequence[int], factor: int = SPLIT_FACTOR) -> int:
    """Return how many of the smallest packs to combine, given pack *sizes* sorted ascending.

    git's rule: from the top, find the first pack smaller than *factor* times
    the next smaller one; combine it and everything below, then absorb bigger
    packs while each is smaller than *factor* times the combined size.
    Returns 0 when the sizes already form a progression (nothing to do).
    """
    split = 0
    for i in range(len(sizes) - 1, 0, -1):
        if sizes[i] < factor * sizes[i - 1]:
            split = i + 1
            break
    total = sum(sizes[:split])
    while split and split < len(sizes) and sizes[split] < factor * total:
        total += sizes[split]
        split += 1
    return split if split >= 2 else 0


def repackable_packs(repo: Repo) -> list[PackInfo]:
    """Return *repo*'s packs that hold indexed blobs and may be combined, smallest first."""
    rows = (
        MPack.objects.filter(repo=repo, kind__in=REPACKABLE_KINDS)
        .filter(Exists(MPackIndex.objects.filter(mpack_id=OuterRef("pk"))))
        .order_by("size_bytes", "created_at", "mpack_id")
        .values_list("mpack_id", "kind", "size_bytes")
    )
    return [PackInfo(mpack_id, kind, size or 0) for mpack_id, kind, size in rows]


def select_packs(
    repo: Repo, *, max_packs: int | None = None, all_packs: bool = False, max_bytes: int | None = None
) -> list[PackInfo]:
    """Return the packs of *repo* to combine now (smallest first), or [] when there is nothing worth doing."""
    packs = repackable_packs(repo)
    count = len(packs) if all_packs else geometric_split([p.size_bytes for p in packs])
    chosen = packs[:count]
    if max_packs is not None:
        chosen = chosen[:max_packs]
    limit = min(settings.MUSEHUB_MAX_PACK_BYTES, max_bytes or settings.MUSEHUB_MAX_PACK_BYTES)
    while chosen and sum(p.size_bytes for p in chosen) > limit:
        chosen.pop()
    return chosen if len(chosen) >= 2 else []


def _copy_pack(pack: PackInfo, builder: PackBuilder, skipped: list[dict[str, str]]) -> None:
    """Copy the blobs indexed in *pack* (and not yet in *builder*) into *builder*, reading the pack once."""
    rows = (
        MPackIndex.objects.filter(mpack_id=pack.mpack_id)
        .filter(Exists(Object.objects.filter(pk=OuterRef("entity_id"))))
        .values_list("entity_id", "offset", "length", "encoding")
    )
    entries = [r for r in rows if r[0] not in builder]
    if not entries:
        return
    stream = get_backend().open_mpack(pack.mpack_id)
    if stream is None:
        skipped.extend(
            {"object_id": oid, "mpack_id": pack.mpack_id, "reason": "pack missing from storage"} for oid, *_ in entries
        )
        return
    # The entries that know their byte range: all of them, but in packs of older hubs.
    located = [(oid, o, n, encoding) for oid, o, n, encoding in entries if o is not None and n is not None]
    with stream:
        if len(located) == len(entries):
            # Blobs are small: read the pack in big pieces, not two storage reads per blob (as a fetch does).
            buffered = io.BufferedReader(stream, READ_BUFFER)
            position = 0
            for oid, offset, length, encoding in sorted(located, key=lambda e: e[1]):
                if offset < position:  # two rows claim overlapping bytes: an index fsck will flag
                    skipped.append({"object_id": oid, "mpack_id": pack.mpack_id, "reason": "overlapping index entry"})
                    continue
                if not skip_bytes(buffered, offset - position):
                    raise MalformedPack("The pack ended early.")
                stored = buffered.read(length)
                position = offset + len(stored)
                raw = decode_verified(oid, stored, encoding or "") if len(stored) == length else None
                if raw is None:
                    skipped.append({"object_id": oid, "mpack_id": pack.mpack_id, "reason": "bytes do not hash to id"})
                    continue
                builder.add(oid, stored, encoding or "", len(raw))
            return
        # Rows without byte ranges (older hubs): parse the pack, keep the wanted blobs decoded, re-encode.
        wanted = {oid for oid, *_ in entries}
        contents = index_mpack(stream, limits=maintenance_limits(), keep_ids=wanted, verify=True)
    found = {b.object_id: b.content for b in contents.blobs if b.content is not None}
    for oid in sorted(wanted):
        if oid not in found:
            skipped.append({"object_id": oid, "mpack_id": pack.mpack_id, "reason": "not in the pack"})
            continue
        stored, encoding = encode_blob(found[oid])
        builder.add(oid, stored, encoding, len(found[oid]))


def build_repack(repo: Repo, packs: Sequence[PackInfo], *, progress: Progress = no_progress) -> BuiltRepack | None:
    """Write one new pack holding every blob indexed in *packs*; return it (not yet switched in).

    Each source pack is read once. Blobs whose stored bytes do not decode to
    their id are left where they are and listed in ``skipped``. Returns None
    when nothing could be copied.
    """
    skipped: list[dict[str, str]] = []
    with PackBuilder() as builder:
        with progress(total=sum(p.size_bytes for p in packs), desc=f"repack {repo}", unit="B", unit_scale=True) as bar:
            for pack in packs:
                try:
                    _copy_pack(pack, builder, skipped)
                except MalformedPack as exc:
                    skipped.append({"object_id": "", "mpack_id": pack.mpack_id, "reason": exc.message})
                bar.update(pack.size_bytes)
        if not len(builder):
            return None
        mpack_id, size, blobs = builder.write()
    return BuiltRepack(repo=repo, sources=list(packs), mpack_id=mpack_id, size=size, blobs=blobs, skipped=skipped)


def switch_repack(built: BuiltRepack) -> int:
    """Point the index at the new pack in one transaction; return how many blobs moved.

    Inserts the new pack's row and index rows, moves ``Object.storage_uri``
    from the old packs to the new one, and deletes the old index rows. Blobs
    whose old index rows vanished meanwhile (gc) are not switched. The old
    packs stay in storage for fetches already planned; gc removes them later.
    """
    sources = [p.mpack_id for p in built.sources if p.mpack_id != built.mpack_id]
    old_uris = [mpack_uri(m) for m in sources]
    new_uri = mpack_uri(built.mpack_id)
    moved = 0
    with transaction.atomic():
        record_mpack(
            new_mpack_row(built.mpack_id, kind=MPackKind.REPACK, size=built.size, blobs=len(built.blobs)),
            repo_id=built.repo.repo_id,
        )
        # The old packs' grace period restarts now: a fetch planned before the switch may still read them.
        MPack.objects.filter(mpack_id__in=sources).update(created_at=dt.datetime.now(dt.UTC))
        for batch in chunks(built.blobs, CHUNK):
            # Id lists go as one parameter each (``__any``): thousands of placeholders cost more than the work.
            ids = IdList([b.object_id for b in batch])
            present = set(
                MPackIndex.objects.filter(mpack_id__in=sources, entity_id__any=ids).values_list("entity_id", flat=True)
            )
            present &= set(Object.objects.filter(object_id__any=ids).values_list("object_id", flat=True))
            switched = [b for b in batch if b.object_id in present]
            if not switched:
                continue
            record_index(built.mpack_id, switched)
            switched_ids = IdList([b.object_id for b in switched])
            Object.objects.filter(object_id__any=switched_ids, storage_uri__in=old_uris).update(storage_uri=new_uri)
            MPackIndex.objects.filter(mpack_id__in=sources, entity_id__any=switched_ids).delete()
            moved += len(switched)
    return moved


def repack_repo(
    repo: Repo,
    *,
    max_packs: int | None = None,
    all_packs: bool = False,
    max_bytes: int | None = None,
    progress: Progress = no_progress,
) -> RepackResult:
    """Combine *repo*'s small packs into one (see the module docstring for which); return what was done."""
    result = RepackResult(repo=repo.full_name)
    packs = select_packs(repo, max_packs=max_packs, all_packs=all_packs, max_bytes=max_bytes)
    if not packs:
        return result
    built = build_repack(repo, packs, progress=progress)
    result.sources = packs
    if built is None:
        return result
    result.skipped = built.skipped
    result.mpack_id = built.mpack_id
    result.size = built.size
    result.blobs = switch_repack(built)
    return result


@contextlib.contextmanager
def _repacking(repo: Repo) -> Iterator[bool]:
    """Hold this repository's repack lock while the block runs; yield False when another process holds it.

    A PostgreSQL session advisory lock (released at the end, or when the
    connection drops); SQLite runs one writer at a time anyway, so there it is
    always granted.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(f"repack:{repo.repo_id}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        granted = bool(cursor.fetchone()[0])
    try:
        yield granted
    finally:
        if granted:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def compact_after_push(repo: Repo) -> RepackResult | None:
    """Repack *repo* geometrically when it holds more than ``MUSEHUB_AUTO_REPACK_PACKS`` live packs.

    Combines at most ``MUSEHUB_AUTO_REPACK_MAX_BYTES`` of the smallest packs (bigger
    rewrites are musehub_repack's), one push per repository at a time.

    Runs after a push committed, so it never changes what the push stored: a
    failure (storage down, say) is logged and left for the next push or
    ``musehub_repack``. Returns what was done, or None when nothing ran.
    """
    threshold = settings.MUSEHUB_AUTO_REPACK_PACKS
    if threshold <= 0:
        return None
    packs = repackable_packs(repo)
    if len(packs) <= threshold:
        return None
    with _repacking(repo) as mine:
        if not mine:  # another push is compacting this repository right now
            return None
        try:
            result = repack_repo(repo, max_bytes=settings.MUSEHUB_AUTO_REPACK_MAX_BYTES)
        except Exception:
            log.warning("automatic repack of %s failed; the next push or musehub_repack retries", repo, exc_info=True)
            return None
    if result.mpack_id:
        log.info("automatic repack of %s: %d packs into %s", repo, len(result.sources), result.mpack_id)
    return result


def repack_hub(
    *, max_packs: int | None = None, all_packs: bool = False, progress: Progress = no_progress
) -> list[RepackResult]:
    """Repack every repository that has at least two repackable packs; return one result per repository."""
    repo_ids = (
        MPack.objects.filter(kind__in=REPACKABLE_KINDS, repo__isnull=False)
        .values("repo")
        .annotate(packs=Count("pk"))
        .filter(packs__gte=2)
        .values_list("repo", flat=True)
    )
    results = []
    for repo in Repo.objects.filter(repo_id__in=list(repo_ids)).order_by("owner", "slug"):
        results.append(repack_repo(repo, max_packs=max_packs, all_packs=all_packs, progress=progress))
    return results
