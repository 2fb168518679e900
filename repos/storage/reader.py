"""Read blob bytes for serving: content cache first, then each covering mpack once, then legacy keys.

:func:`plan_blob_reads` checks coverage (every blob cached or indexed, else
FetchNotIndexedError) with a constant number of queries; :func:`read_blobs`
then yields ``(object_id, raw bytes)`` for every blob, each verified against its
id (:func:`serve_blobs` passes blobs on as stored; a pack it reads whole is
verified as a whole, see :func:`_read_pack`). Packs are chosen so that as few as possible cover the request; each chosen
pack is read once, by coalesced ranged GETs when only a small part of it is
needed, else as one streamed GET. A pack missing from storage falls back to
another covering pack, then to the legacy per-object key.

Storage *failing* is not a missing pack: a refused, timed-out or cut-off read
(also one that breaks mid-stream, see ``StorageStream``) raises
StorageUnavailable (503, retry) at once. It never falls back, so a broken
connection is never mistaken for damaged bytes (IntegrityError, a 500).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from musehub_core.errors import FetchNotIndexedError, IntegrityError, MalformedPack, StorageUnavailable
from musehub_core.ids import PREFIX, blob_id
from musehub_core.mpack import decode_verified, index_mpack, skip_bytes, verify_blob
from repos.lookups import IdList, raw_rows
from repos.models import MPack, MPackIndex, Object
from repos.storage.backend import MAX_SPANS, StorageStream, coalesce_ranges, get_backend

log = logging.getLogger("musehub.blobs")
_CHUNK = 10_000
_CACHE_CHUNK = 1_000
# A pack is read by ranges when the bytes needed are less than this share of it.
RANGED_READ_MAX_SHARE = 0.5
READ_BUFFER = 1024 * 1024


class IndexEntry(NamedTuple):
    """Where one blob lies in one pack (a tuple: a clone plans tens of thousands of them)."""

    object_id: str
    mpack_id: str
    offset: int | None
    length: int | None
    encoding: str


@dataclass
class BlobPlan:
    """Where each requested blob will be read from."""

    cached: list[str] = field(default_factory=list)
    by_pack: dict[str, list[IndexEntry]] = field(default_factory=dict)
    alternatives: dict[str, list[IndexEntry]] = field(default_factory=dict)
    pack_sizes: dict[str, int] = field(default_factory=dict)
    damaged: set[str] = field(default_factory=set)  # packs a streamed read found damaged: checked blob by blob

    @property
    def count(self) -> int:
        return len(self.cached) + sum(len(v) for v in self.by_pack.values())


def _chunks(items: list[str], size: int = _CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _cached(ids: list[str]) -> set[str]:
    """Return those of *ids* whose content the database holds.

    The content cache is off by default: a probe of the partial index of cached
    objects (migration 0014) finds none, and the query naming every id is not sent.
    """
    # Ordered by the indexed column: the partial index is used even before the table has statistics.
    probe = Object.objects.filter(content_cache__isnull=False).order_by("object_id").values_list("object_id")
    if not ids or not probe[:1]:
        return set()
    return set(
        Object.objects.filter(object_id__any=ids, content_cache__isnull=False).values_list("object_id", flat=True)
    )


# A row (object id, pack, offset, length, encoding) as an IndexEntry, with no Python call per row.
_index_entry = functools.partial(tuple.__new__, IndexEntry)


def plan_blob_reads(object_ids: Iterable[str]) -> BlobPlan:
    """Return where to read each blob from; raise FetchNotIndexedError if any is neither cached nor indexed."""
    ids = list(dict.fromkeys(object_ids))
    cached = _cached(ids)
    uncached = [oid for oid in ids if oid not in cached] if cached else ids
    rows = raw_rows(
        MPackIndex.objects.filter(entity_id__any=IdList(uncached)).values_list(
            "entity_id", "mpack_id", "offset", "length", "encoding"
        )
    )
    if None in set(map(itemgetter(4), rows)):
        rows = [(*row[:4], row[4] or "") for row in rows]
    made = list(map(_index_entry, rows))
    popularity = Counter(map(itemgetter(1), made))
    first = dict(zip(map(itemgetter(0), made), made, strict=True))
    missing = [oid for oid in uncached if oid not in first]
    if missing:
        raise FetchNotIndexedError(
            f"{len(missing)} object(s) are not indexed in any mpack yet (first: {missing[0]}); retry shortly.",
            missing=missing[:20],
        )
    plan = BlobPlan(cached=[oid for oid in ids if oid in cached])
    if len(first) == len(made) and len(popularity) == 1:  # the common case: one pack, each blob in it once
        plan.by_pack = {made[0].mpack_id: [first[oid] for oid in uncached]}
    elif made:
        # Greedy cover: prefer the packs that hold the most of what is needed.
        entries: dict[str, list[IndexEntry]] = defaultdict(list)
        for entry in made:
            entries[entry.object_id].append(entry)
        by_pack: dict[str, list[IndexEntry]] = defaultdict(list)
        for oid in uncached:
            options = entries[oid]
            if len(options) > 1:  # most blobs lie in one pack: nothing to choose
                options = sorted(options, key=lambda e: (-popularity[e.mpack_id], e.offset is None, e.mpack_id))
                plan.alternatives[oid] = options[1:]
            by_pack[options[0].mpack_id].append(options[0])
        plan.by_pack = dict(by_pack)
    for mpack_id, size, damaged_at in MPack.objects.filter(mpack_id__in=list(plan.by_pack)).values_list(
        "mpack_id", "size_bytes", "damaged_at"
    ):
        plan.pack_sizes[mpack_id] = size
        if damaged_at is not None:
            plan.damaged.add(mpack_id)
    return plan


def _verified(entry_id: str, raw: bytes) -> bytes | None:
    return raw if blob_id(raw) == entry_id else None


class ServedBlob(NamedTuple):
    """One blob as it is served: its bytes as stored (``encoding`` '' for raw) and, when decoded, the raw bytes.

    A tuple: a clone serves tens of thousands of them.
    """

    object_id: str
    stored: bytes
    encoding: str
    raw: bytes | None = None


def _checked(entry: IndexEntry, stored: bytes, *, keep_raw: bool) -> ServedBlob | None:
    """Return *stored* as a ServedBlob when it decodes and hashes to the entry's id, else None."""
    if not entry.encoding:
        return ServedBlob(entry.object_id, stored, "", stored) if blob_id(stored) == entry.object_id else None
    if keep_raw:
        raw = decode_verified(entry.object_id, stored, entry.encoding)
        return None if raw is None else ServedBlob(entry.object_id, stored, entry.encoding, raw)
    return (
        ServedBlob(entry.object_id, stored, entry.encoding)
        if verify_blob(entry.object_id, stored, entry.encoding)
        else None
    )


class _Digesting(io.RawIOBase):
    """A pack's storage stream, hashing every byte read through it (a whole pack's key is its SHA-256)."""

    def __init__(self, stream: StorageStream) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._stream.readinto(buffer)
        if count:
            self._hash.update(memoryview(buffer)[:count])
        return count

    def check(self, mpack_id: str) -> None:
        """Raise IntegrityError (see :func:`_damaged`) when the bytes read do not hash to *mpack_id*."""
        if PREFIX + self._hash.hexdigest() != mpack_id:
            raise _damaged(mpack_id, "does not hash to its id")


def _damaged(mpack_id: str, how: str) -> IntegrityError:
    """Record that a streamed read found pack *mpack_id* damaged and return the error that cuts the reply.

    Blobs of it already went out unchecked, so the reply cannot be finished;
    the record makes every later read of the pack check blob by blob and fall
    back to other copies, so the client's retry can succeed.
    """
    MPack.objects.filter(mpack_id=mpack_id).update(damaged_at=dt.datetime.now(dt.UTC))
    log.error("mpack %s %s: streamed reads now check it blob by blob; run musehub_fsck", mpack_id, how)
    return IntegrityError(f"mpack {mpack_id} {how}; run musehub_fsck.")


def _read_pack(
    mpack_id: str, entries: list[IndexEntry], pack_size: int | None, *, keep_raw: bool = True, by_digest: bool = False
) -> Iterator[tuple[str, ServedBlob | None]]:
    """Yield (object_id, verified blob or None) for *entries* from one pack; raise FileNotFoundError when it is missing.

    Each byte is read from storage once. A blob read by range is decoded to
    check it (and kept decoded with *keep_raw*). With *by_digest* (blobs
    passed on as stored, for a streamed fetch) a pack read whole is checked
    as a whole instead: its bytes must hash to its id, which the push
    verified blob by blob; the blobs go out as they are read, and a mismatch
    or a pack that ends early, found by then, raises IntegrityError (cutting
    the reply; the client checks every blob itself) and marks the pack
    damaged (:func:`_damaged`). A quarter of the work of decoding and hashing each blob.
    """
    backend = get_backend()
    # (entry, offset, length) of the entries that know their byte range (all of them, but in older packs)
    located = [(e, e.offset, e.length) for e in entries if e.offset is not None and e.length is not None]
    if len(located) == len(entries) and pack_size:
        needed = sum(length for _, _, length in located)
        wanted = [(offset, length) for _, offset, length in located]
        if needed < pack_size * RANGED_READ_MAX_SHARE and len(coalesce_ranges(wanted)) <= MAX_SPANS:
            spans = backend.read_ranges(mpack_id, wanted)
            if spans is None:
                raise FileNotFoundError(mpack_id)
            for e, offset, length in located:
                yield e.object_id, _checked(e, spans[(offset, length)], keep_raw=keep_raw)
            return
    stream = backend.open_mpack(mpack_id)
    if stream is None:
        raise FileNotFoundError(mpack_id)
    with stream:
        if len(located) == len(entries):
            # Blobs are small: read the pack in big pieces, not two storage reads per blob.
            digesting = _Digesting(stream) if by_digest and not keep_raw else None
            buffered = io.BufferedReader(digesting or stream, READ_BUFFER)
            position = 0
            for e, offset, length in sorted(located, key=itemgetter(1)):
                if not skip_bytes(buffered, offset - position):
                    if digesting is not None:
                        raise _damaged(mpack_id, "ends early")
                    raise MalformedPack("The pack ended early.")
                stored = buffered.read(length)
                position = offset + len(stored)
                if digesting is not None:
                    if len(stored) != length:
                        raise _damaged(mpack_id, "ends early")
                    yield e.object_id, ServedBlob(e.object_id, stored, e.encoding)
                elif len(stored) != length:
                    yield e.object_id, None
                else:
                    yield e.object_id, _checked(e, stored, keep_raw=keep_raw)
            if digesting is not None:
                while buffered.read(READ_BUFFER):
                    pass
                digesting.check(mpack_id)
            return
        # Index rows without byte ranges (older packs): parse the pack once and pick the blobs out (decoded).
        ids = {e.object_id for e in entries}
        contents = index_mpack(stream, keep_content_up_to=-1, keep_ids=ids, verify=False)
    found = {b.object_id: b.content for b in contents.blobs if b.content is not None}
    for oid in ids:
        raw = _verified(oid, found[oid]) if oid in found else None
        yield oid, None if raw is None else ServedBlob(oid, raw, "", raw)


def read_blobs(plan: BlobPlan) -> Iterator[tuple[str, bytes]]:
    """Yield (object_id, raw bytes) for every blob in *plan*, each verified against its id.

    Raises IntegrityError when no source holds a blob's correct bytes.
    """
    for blob in serve_blobs(plan, keep_raw=True):
        assert blob.raw is not None  # keep_raw: every blob comes decoded
        yield blob.object_id, blob.raw


def serve_blobs(plan: BlobPlan, *, keep_raw: bool = False) -> Iterator[ServedBlob]:
    """Yield every blob in *plan* once, verified, as stored (and decoded with *keep_raw*).

    Without *keep_raw* a pack read whole is verified as a whole (see
    :func:`_read_pack`): a damaged one raises IntegrityError after its blobs
    and is checked blob by blob from then on.

    Content-cache rows come raw; pack entries keep the encoding they were
    stored with, so a reply can pass them on without re-encoding. Raises
    IntegrityError when no source holds a blob's correct bytes.
    """
    for chunk in _chunks(plan.cached):
        # One query per chunk of ids; rows arrive _CACHE_CHUNK at a time, so memory stays bounded.
        rows = Object.objects.filter(object_id__in=chunk).values_list("object_id", "content_cache")
        for oid, content in rows.iterator(chunk_size=_CACHE_CHUNK):
            raw = _verified(oid, bytes(content)) if content is not None else None
            if raw is None:
                log.warning("content_cache of %s is wrong; falling back to its mpack", oid)
                raw = _read_elsewhere(oid, plan.alternatives.get(oid, []))
            yield ServedBlob(oid, raw, "", raw)
    for mpack_id, entries in plan.by_pack.items():
        served: set[str] = set()
        try:
            by_digest = not keep_raw and mpack_id not in plan.damaged
            for oid, blob in _read_pack(
                mpack_id, entries, plan.pack_sizes.get(mpack_id), keep_raw=keep_raw, by_digest=by_digest
            ):
                if blob is not None:
                    served.add(oid)
                    yield blob
        except StorageUnavailable:
            raise  # storage is failing, not this pack: 503 now rather than falling back
        except (FileNotFoundError, MalformedPack):
            log.warning("mpack %s is missing or damaged; falling back for %d blob(s)", mpack_id, len(entries))
        # Every blob not served from this pack (bad bytes, or the pack broke part way), and only those, once.
        for entry in entries:
            if entry.object_id not in served:
                raw = _read_elsewhere(entry.object_id, plan.alternatives.get(entry.object_id, []), mpack_id)
                yield ServedBlob(entry.object_id, raw, "", raw)


def _read_elsewhere(oid: str, alternatives: list[IndexEntry], failed_pack: str = "") -> bytes:
    """Read one blob from its other covering packs, then from its legacy per-object key.

    The packs the plan knew come first, then any the index names now (a repack
    may have moved the blob since the fetch was planned).
    """
    tried = {failed_pack, *(e.mpack_id for e in alternatives)}
    current = [
        IndexEntry(oid, mpack_id, offset, length, encoding or "")
        for mpack_id, offset, length, encoding in MPackIndex.objects.filter(entity_id=oid)
        .exclude(mpack_id__in=tried)
        .values_list("mpack_id", "offset", "length", "encoding")
    ]
    for entry in [*alternatives, *current]:
        try:
            for _, blob in _read_pack(entry.mpack_id, [entry], None):
                if blob is not None:
                    assert blob.raw is not None  # _read_pack keeps raw bytes unless told not to
                    return blob.raw
        except StorageUnavailable:
            raise
        except (FileNotFoundError, MalformedPack):
            continue
    raw = get_backend().get(oid)
    if raw is not None and blob_id(raw) == oid:
        return raw
    raise IntegrityError(f"No storage holds the correct bytes of object {oid}; run musehub_fsck.", object_id=oid)


def read_blob(object_id: str) -> bytes:
    """Return one blob's verified bytes (REST raw file view); raise StorageUnavailable when storage fails."""
    for _, raw in read_blobs(plan_blob_reads([object_id])):
        return raw
    raise IntegrityError(f"Object {object_id} could not be read.")
