"""Stored manifests: the one module that reads and writes ``Snapshot.manifest_blob``.

A snapshot row holds either its whole manifest (a *checkpoint*, ``base_id``
NULL, ``depth`` 0) or a delta against another snapshot (``base_id``, ``set`` and
``delete`` as in docs/wire.md §2.1, ``depth`` = the base's depth + 1). A new
snapshot is stored as a delta against its first parent's snapshot when that is
smaller, and as a checkpoint when the chain would grow past
``MUSEHUB_SNAPSHOT_CHAIN_MAX``: a history costs what changed, and rebuilding
any manifest reads one checkpoint and at most that many small rows, in one
query, whatever the history's length.

The stored bytes are zstd-compressed msgpack (rows written before deltas
existed are plain msgpack and still read). Everything else asks this module:
:func:`load_manifests` / :func:`load_manifest` for full manifests,
:func:`iter_manifests` to walk many in order with bounded memory,
:func:`stored_form` for the row as stored (fetch sends deltas without
rebuilding), :func:`changed_paths` (a log filtered by path reads one small
row per commit), :func:`named_objects` (gc, fsck) and
:class:`SnapshotPlanner` to decide how new snapshots are stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgpack
import zstandard
from django.conf import settings
from django.db import connection

from musehub_core.errors import MalformedPack
from musehub_core.manifests import ManifestDelta, Tree, apply_delta, delta_pays, make_delta
from musehub_core.mpack import decode_blob

from .models import Snapshot

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BATCH = 500
_CACHE_MIN_ENTRIES = 1_000  # small checkpoints decode fast; keep the cache for big trees
_DECODED_MAX = 2**34


def chain_max() -> int:
    """Return how many deltas may stand between a snapshot and its checkpoint."""
    return max(0, int(settings.MUSEHUB_SNAPSHOT_CHAIN_MAX))


# --- the stored bytes -------------------------------------------------------------------------------


def _pack(value: Any) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(msgpack.packb(value, use_bin_type=True))


def _unpack(blob: bytes | memoryview | None) -> Any:
    data = bytes(blob or b"")
    if not data:
        return {}
    if data.startswith(_ZSTD_MAGIC):
        try:  # our frames record their size, so one call decodes them (much faster than streaming)
            data = zstandard.ZstdDecompressor().decompress(data)
        except zstandard.ZstdError:
            data = decode_blob(data, "zstd", max_bytes=_DECODED_MAX, where="stored manifest")
    return msgpack.unpackb(data, raw=False)


def encode_full(manifest: Mapping[str, str]) -> bytes:
    """Return the stored bytes of a checkpoint: the manifest with paths in sorted order."""
    return _pack(dict(sorted(manifest.items())))


def encode_delta(delta: ManifestDelta) -> bytes:
    """Return the stored bytes of a delta row."""
    return _pack({"set": dict(sorted(delta.set.items())), "delete": sorted(delta.delete)})


def encode_changes(parent_id: str, paths: Iterable[str]) -> bytes:
    """Return a checkpoint's stored note of the paths it changes against its first parent's snapshot."""
    return _pack({"parent": parent_id, "paths": sorted(set(paths))})


def _decode_changes(blob: bytes | memoryview | None) -> tuple[str | None, set[str]]:
    value = _unpack(blob) if blob else {}
    return value.get("parent"), set(value.get("paths") or ())


def _decode_delta(blob: bytes | memoryview | None) -> ManifestDelta:
    value = _unpack(blob)
    return ManifestDelta(set=dict(value.get("set") or {}), delete=list(value.get("delete") or []))


@dataclass(frozen=True)
class StoredForm:
    """A snapshot row as stored: a full manifest, or a delta against ``base_id``."""

    snapshot_id: str
    base_id: str | None
    depth: int
    entry_count: int
    manifest: dict[str, str] | None = None
    delta: ManifestDelta | None = None
    created_at: str = ""  # the SnapshotDict's created_at, verbatim

    def named_objects(self) -> Iterable[str]:
        """The object ids this row itself names (a delta: only those it sets)."""
        return self._named().values()

    def named_paths(self) -> Iterable[str]:
        """The paths this row itself names (a delta: only those it sets)."""
        return self._named().keys()

    def _named(self) -> dict[str, str]:
        if self.delta is not None:
            return self.delta.set
        assert self.manifest is not None  # a row holds a full manifest or a delta
        return self.manifest


def _form(sid: str, base_id: str | None, depth: int, count: int, blob: Any, created_at: str) -> StoredForm:
    if base_id is None:
        return StoredForm(sid, None, depth, count, manifest=_unpack(blob), created_at=created_at)
    return StoredForm(sid, base_id, depth, count, delta=_decode_delta(blob), created_at=created_at)


def stored_forms(snapshot_ids: Iterable[str]) -> dict[str, StoredForm]:
    """Return the rows of *snapshot_ids* as stored (deltas are not rebuilt)."""
    ids = list(dict.fromkeys(snapshot_ids))
    found: dict[str, StoredForm] = {}
    for start in range(0, len(ids), _BATCH):
        rows = Snapshot.objects.filter(snapshot_id__in=ids[start : start + _BATCH]).values_list(
            "snapshot_id", "base_id", "depth", "entry_count", "manifest_blob", "stated_created_at"
        )
        found.update((row[0], _form(*row)) for row in rows)
    return found


def stated_times(snapshot_ids: Iterable[str]) -> dict[str, str]:
    """Return {id: created_at as the client stated it} for the given snapshots (no manifest is read)."""
    ids = list(dict.fromkeys(snapshot_ids))
    found: dict[str, str] = {}
    for start in range(0, len(ids), _BATCH):
        rows = Snapshot.objects.filter(snapshot_id__in=ids[start : start + _BATCH])
        found.update(rows.values_list("snapshot_id", "stated_created_at"))
    return found


def stored_form(snapshot_id: str) -> StoredForm | None:
    return stored_forms([snapshot_id]).get(snapshot_id)


# --- rebuilding ---------------------------------------------------------------------------------


def _chain_rows(
    snapshot_ids: Sequence[str], *, cached: Sequence[str] = ()
) -> dict[str, tuple[str | None, int, int, Any]]:
    """Return {id: (base_id, depth, entry_count, blob)} for *snapshot_ids* and every row down their chains.

    One recursive query per batch: the chain is walked by the database. The
    blob of a checkpoint in *cached* (decoded already) is not sent: None.
    """
    table = connection.ops.quote_name(Snapshot._meta.db_table)
    rows: dict[str, tuple[str | None, int, int, Any]] = {}
    skip = ", ".join(["%s"] * len(cached))
    # Only a row that is still a checkpoint: one rewritten as a delta since (musehub_snapshot_deltas) needs its blob.
    blob = (
        f"CASE WHEN s.base_id IS NULL AND s.snapshot_id IN ({skip}) THEN NULL ELSE s.manifest_blob END"
        if cached
        else "s.manifest_blob"
    )
    for start in range(0, len(snapshot_ids), _BATCH):
        batch = list(snapshot_ids[start : start + _BATCH])
        marks = ", ".join(["%s"] * len(batch))
        sql = (
            f"WITH RECURSIVE chain(snapshot_id, base_id) AS ("
            f" SELECT snapshot_id, base_id FROM {table} WHERE snapshot_id IN ({marks})"
            f" UNION SELECT s.snapshot_id, s.base_id FROM {table} s JOIN chain c ON s.snapshot_id = c.base_id)"
            f" SELECT s.snapshot_id, s.base_id, s.depth, s.entry_count, {blob} FROM {table} s"
            f" WHERE s.snapshot_id IN (SELECT snapshot_id FROM chain)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*batch, *cached])
            for sid, base_id, depth, count, data in cursor.fetchall():
                rows[sid] = (base_id, depth, count, data)
    return rows


T = TypeVar("T")


class _Recent(Generic[T]):
    """The last few values this process built, by snapshot id (never mutated; a snapshot's manifest never
    changes, so an entry cannot go stale)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, T] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, sid: str) -> T | None:
        with self._lock:
            found = self._items.get(sid)
            if found is not None:
                self._items.move_to_end(sid)
            return found

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def put(self, sid: str, value: T) -> None:
        with self._lock:
            self._items[sid] = value
            self._items.move_to_end(sid)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


# Decoding a big checkpoint is most of a rebuild.
_CHECKPOINTS: _Recent[dict[str, str]] = _Recent(4)
# The trees pushes verified last (a branch head, with its sorted entries): the next push on top of one checks
# its snapshot id without loading and sorting the whole manifest again. About 10 MB for 25,000 entries: two
# trees of at most 100,000 entries each, so at most about 80 MB per process.
KEPT_TREES = 2
_TREES: _Recent[Tree] = _Recent(KEPT_TREES)
TREE_MIN_ENTRIES = _CACHE_MIN_ENTRIES  # smaller trees are cheap to rebuild
_TREE_MAX_ENTRIES = 100_000


def recent_tree(snapshot_id: str) -> Tree | None:
    """Return the Tree of *snapshot_id* if this process verified it lately (see :func:`remember_tree`)."""
    return _TREES.get(snapshot_id)


def remember_tree(snapshot_id: str, tree: Tree) -> None:
    """Keep *tree*, whose snapshot id was just verified to be *snapshot_id*, for the next push on top of it.

    Only big trees are kept (a small one is cheap to rebuild), and none too big to hold in memory.
    """
    if TREE_MIN_ENTRIES <= len(tree.manifest) <= _TREE_MAX_ENTRIES:
        _TREES.put(snapshot_id, tree)


class _Rebuilder:
    """Rebuild manifests from chain rows, keeping a few decoded checkpoints and recent results.

    With *trusted* false (fsck) every row is decoded from the database, never from the process cache.
    """

    def __init__(self, rows: dict[str, tuple[str | None, int, int, Any]], keep: int = 4, trusted: bool = True) -> None:
        self.rows = rows
        self._recent: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._keep = keep
        self._trusted = trusted

    def _checkpoint(self, sid: str) -> dict[str, str]:
        cached = _CHECKPOINTS.get(sid) if self._trusted else None
        if cached is None:
            data = self.rows[sid][3]
            if data is None:  # left out of the query as cached, and dropped from the cache since
                data = Snapshot.objects.filter(snapshot_id=sid).values_list("manifest_blob", flat=True).first()
                if data is None:
                    raise MalformedPack(f"Snapshot {sid} cannot be rebuilt: it is no longer stored.")
            cached = _unpack(data)
            if self._trusted and len(cached) >= _CACHE_MIN_ENTRIES:
                _CHECKPOINTS.put(sid, cached)
        return cached

    def _remember(self, sid: str, manifest: dict[str, str]) -> None:
        self._recent[sid] = manifest
        self._recent.move_to_end(sid)
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)

    def manifest(self, sid: str) -> dict[str, str]:
        """Return a fresh dict holding the manifest of *sid* (raises MalformedPack for a broken chain)."""
        chain: list[str] = []
        current: str | None = sid
        start: dict[str, str] | None = None
        while current is not None:
            if current in self._recent:
                start = self._recent[current]
                break
            row = self.rows.get(current)
            if row is None:
                raise MalformedPack(
                    f"Snapshot {sid} cannot be rebuilt: its chain names {current}, which is not stored."
                )
            if len(chain) > 100_000:
                raise MalformedPack(f"Snapshot {sid} cannot be rebuilt: its chain loops.")
            chain.append(current)
            if row[0] is None:
                break
            current = row[0]
        if start is None:
            base_id = chain.pop()
            start = self._checkpoint(base_id)
            self._remember(base_id, start)
        manifest = dict(start)
        for member in reversed(chain):
            data = self.rows[member][3]
            if data is None:  # _chain_rows leaves out only checkpoints' blobs: never a delta's
                raise MalformedPack(f"Snapshot {sid} cannot be rebuilt: stored delta {member} has no content.")
            delta = _decode_delta(data)
            apply_delta(manifest, delta, where=f"stored snapshot {member}", in_place=True)
        if chain:
            self._remember(sid, manifest)
            manifest = dict(manifest)
        return manifest


def load_manifests(snapshot_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Return {snapshot_id: full manifest} for the stored ones of *snapshot_ids*.

    Holds every result in memory: for many snapshots of a big tree use :func:`iter_manifests`.
    """
    ids = list(dict.fromkeys(snapshot_ids))
    rebuilder = _Rebuilder(_chain_rows(ids, cached=_CHECKPOINTS.keys()))
    return {sid: rebuilder.manifest(sid) for sid in ids if sid in rebuilder.rows}


def named_among(snapshot_ids: Iterable[str], candidates: Iterable[str]) -> set[str]:
    """Return the object ids among *candidates* that some manifest of *snapshot_ids* names.

    A tree this process keeps is read in place; the others are rebuilt. One set
    intersection per manifest instead of a set of all its objects: a fetch of
    10 changed files on a 25,000-file tree asks about 10 ids, not 25,000.
    """
    wanted = set(candidates)
    found: set[str] = set()
    if not wanted:
        return found
    rest = []
    for sid in dict.fromkeys(snapshot_ids):
        tree = recent_tree(sid)
        if tree is None:
            rest.append(sid)
        else:
            found |= wanted.intersection(tree.manifest.values())
    for manifest in load_manifests(rest).values():
        found |= wanted.intersection(manifest.values())
    return found


def load_manifest(snapshot_id: str) -> dict[str, str]:
    """Return the full manifest of *snapshot_id* (empty when it is not stored)."""
    return load_manifests([snapshot_id]).get(snapshot_id, {})


def iter_manifests(snapshot_ids: Sequence[str], *, batch: int = 64) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (id, full manifest) for each stored snapshot of *snapshot_ids*, in order, a few in memory at a time.

    Consecutive snapshots that are deltas of each other (a history walked
    parents first) cost one small row each.
    """
    rebuilder = _Rebuilder({})
    for start in range(0, len(snapshot_ids), batch):
        chunk = list(snapshot_ids[start : start + batch])
        rebuilder.rows = _chain_rows(chunk, cached=_CHECKPOINTS.keys())
        for sid in chunk:
            if sid in rebuilder.rows:
                yield sid, rebuilder.manifest(sid)


def changed_paths(
    pairs: Sequence[tuple[str, str | None]], *, batch: int = _BATCH
) -> dict[tuple[str, str | None], set[str]]:
    """Return, for each (snapshot id, parent snapshot id or None), the paths whose entry differs between them.

    Answered from small rows when the snapshot is stored as a delta against that
    parent, or is a checkpoint that noted its changes against it (the usual
    case: a long log costs one small row per commit, never a whole manifest);
    other pairs are rebuilt and compared, and a checkpoint's answer is noted on
    its row for the next time (rows written before checkpoints kept the note).
    """
    found: dict[tuple[str, str | None], set[str]] = {}
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        rows = {
            sid: (base, changes)
            for sid, base, changes in Snapshot.objects.filter(
                snapshot_id__in=list({sid for sid, _ in chunk})
            ).values_list("snapshot_id", "base_id", "parent_changes")
        }
        deltas = [sid for sid, parent in chunk if parent is not None and rows.get(sid, (None, None))[0] == parent]
        forms = stored_forms(deltas) if deltas else {}
        rest = []
        for sid, parent in chunk:
            base, changes = rows.get(sid, (None, None))
            form = forms.get(sid)
            noted_parent, noted = _decode_changes(changes) if base is None and changes else (None, set())
            if form is not None and form.delta is not None and form.base_id == parent:
                found[(sid, parent)] = {*form.delta.set, *form.delta.delete}
            elif parent is not None and noted_parent == parent:
                found[(sid, parent)] = noted
            else:
                rest.append((sid, parent))
        if rest:
            manifests = load_manifests({x for pair in rest for x in pair if x})
            for sid, parent in rest:
                new, old = manifests.get(sid, {}), manifests.get(parent or "", {})
                found[(sid, parent)] = {p for p in new if old.get(p) != new[p]} | {p for p in old if p not in new}
            _note_changes([(sid, parent, found[(sid, parent)]) for sid, parent in rest if parent and sid in rows])
    return found


def _note_changes(checkpoints: Sequence[tuple[str, str, set[str]]]) -> None:
    """Note on checkpoint rows written without one what they change against *parent*."""
    for sid, parent, paths in checkpoints:
        Snapshot.objects.filter(snapshot_id=sid, base_id__isnull=True, parent_changes__isnull=True).update(
            parent_changes=encode_changes(parent, paths)
        )


def named_objects(snapshot_ids: Iterable[str]) -> Iterator[tuple[str, Iterable[str]]]:
    """Yield (snapshot id, object ids its row names) for each stored snapshot, without rebuilding.

    :func:`named_forms` yields the rows themselves (their paths too).

    Over a set of snapshots that holds each one's whole chain, the union is
    every object their manifests name: each object of a manifest was set by
    its checkpoint or by one of the deltas above it.
    """
    for sid, form in named_forms(snapshot_ids):
        yield sid, form.named_objects()


def named_forms(snapshot_ids: Iterable[str]) -> Iterator[tuple[str, StoredForm]]:
    """Yield (snapshot id, its stored row) for each stored snapshot, a batch of rows read at a time."""
    ids = list(dict.fromkeys(snapshot_ids))
    for start in range(0, len(ids), _BATCH):
        yield from stored_forms(ids[start : start + _BATCH]).items()


def verify_snapshots(snapshot_ids: Sequence[str], *, batch: int = 64) -> Iterator[tuple[str, str | None]]:
    """Yield (id, None) for each snapshot that rebuilds to its id, (id, a sentence saying why not) otherwise."""
    rebuilder = _Rebuilder({}, trusted=False)
    for start in range(0, len(snapshot_ids), batch):
        chunk = list(snapshot_ids[start : start + batch])
        rebuilder.rows = _chain_rows(chunk)
        for sid in chunk:
            if sid not in rebuilder.rows:
                yield sid, "it is not stored"
                continue
            try:
                actual = Tree.of(rebuilder.manifest(sid)).snapshot_id()
            except (MalformedPack, ValueError, TypeError, AttributeError, msgpack.UnpackException) as exc:
                yield sid, f"its stored manifest cannot be rebuilt: {getattr(exc, 'message', exc)}"
                continue
            yield sid, None if actual == sid else f"its stored manifest rebuilds to {actual}"


# --- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRow:
    """How one new snapshot is stored, and which objects it names beyond its base (for connectivity)."""

    snapshot_id: str
    blob: bytes
    base_id: str | None
    depth: int
    entry_count: int
    added: dict[str, str]  # {path: object_id} beyond the base it was compared with (all entries if none)
    created_at: str = ""
    parent_changes: bytes | None = None  # a checkpoint's changed paths against its first parent's snapshot

    def as_insert(self) -> tuple[str, bytes, str | None, int, int, str, bytes | None]:
        return (
            self.snapshot_id,
            self.blob,
            self.base_id,
            self.depth,
            self.entry_count,
            self.created_at,
            self.parent_changes,
        )


SNAPSHOT_FIELDS = [
    "snapshot_id",
    "manifest_blob",
    "base_id",
    "depth",
    "entry_count",
    "stated_created_at",
    "parent_changes",
]
# Columns a list of snapshots should not load (the admin defers them).
BULKY_FIELDS = ("manifest_blob", "parent_changes")


def stored_bytes(snapshot_ids: Iterable[str]) -> dict[str, tuple[bytes, str | None]]:
    """Return {id: (stored bytes, base id)} of the given snapshots, as they are now."""
    return {
        sid: (bytes(blob), base)
        for sid, blob, base in Snapshot.objects.filter(snapshot_id__in=list(snapshot_ids)).values_list(
            "snapshot_id", "manifest_blob", "base_id"
        )
    }


def rewrite_rows(rows: Sequence[SnapshotRow]) -> None:
    """Store existing snapshots as *rows* say (their manifests must be unchanged; call inside a transaction)."""
    Snapshot.objects.bulk_update(
        [Snapshot(snapshot_id=r.snapshot_id, manifest_blob=r.blob, base_id=r.base_id, depth=r.depth) for r in rows],
        ["manifest_blob", "base_id", "depth"],
        batch_size=_BATCH,
    )


class SnapshotPlanner:
    """Decide how new snapshots are stored, given their trees in an order where a base comes first.

    :meth:`add` takes a snapshot's full tree and the snapshot it should be
    stored against (normally its first parent's); the base may be an earlier
    snapshot given to this planner or one already stored. Keeps the last few
    trees so a chain of commits costs one small delta each.
    """

    def __init__(self, keep: int = 4, *, depths: Mapping[str, int] | None = None) -> None:
        self.rows: list[SnapshotRow] = []
        self._depth: dict[str, int] = dict(depths or {})  # stored depths the caller already read
        self._recent: OrderedDict[str, Mapping[str, str]] = OrderedDict()
        self._keep = keep

    def _base_manifest(self, base_id: str) -> tuple[Mapping[str, str], int] | None:
        if base_id in self._recent:
            return self._recent[base_id], self._depth[base_id]
        depth = self._depth.get(base_id)  # planned here: its row may not be written yet
        if depth is None:
            depth = Snapshot.objects.filter(snapshot_id=base_id).values_list("depth", flat=True).first()
            if depth is None:
                return None
            self._depth[base_id] = depth
        tree = recent_tree(base_id)
        return (tree.manifest if tree is not None else load_manifest(base_id)), depth

    def add(
        self,
        snapshot_id: str,
        manifest: Mapping[str, str],
        *,
        base_id: str | None,
        delta: ManifestDelta | None = None,
        stored_depth: int | None = None,
        created_at: str = "",
    ) -> SnapshotRow:
        """Plan how *snapshot_id* is stored (against *base_id* where that pays) and return the row.

        *delta* is the delta from *base_id* when the caller already has it (a
        pushed delta), saving the comparison. *stored_depth* is the depth of a
        row already stored for this snapshot (that row is kept; the returned one
        still says what the snapshot adds beyond *base_id*).
        """
        based: tuple[Mapping[str, str] | None, int] | None = None
        if base_id and base_id != snapshot_id:
            if delta is not None:  # only the base's depth is needed
                depth = self._depth.get(base_id)
                if depth is None:
                    depth = Snapshot.objects.filter(snapshot_id=base_id).values_list("depth", flat=True).first()
                based = None if depth is None else (None, depth)
            else:
                based = self._base_manifest(base_id)
                delta = make_delta(based[0], manifest) if based is not None else None
        if based is None:
            delta = None
        if based is not None and delta is not None and delta_pays(delta, manifest) and based[1] < chain_max():
            row = SnapshotRow(
                snapshot_id, encode_delta(delta), base_id, based[1] + 1, len(manifest), delta.set, created_at
            )
        else:
            added = dict(delta.set) if delta is not None else dict(manifest)
            # A checkpoint still notes what it changes against its base, so a path's log reads small rows only.
            changes = (
                encode_changes(base_id, [*delta.set, *delta.delete])
                if base_id and based is not None and delta is not None
                else None
            )
            row = SnapshotRow(snapshot_id, encode_full(manifest), None, 0, len(manifest), added, created_at, changes)
        self.rows.append(row)
        self._depth[snapshot_id] = row.depth if stored_depth is None else stored_depth
        self._recent[snapshot_id] = manifest
        self._recent.move_to_end(snapshot_id)
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)
        return row
