"""Packs on the client: the push pack, verifying downloaded packs, the local pack store, downloads.

Downloaded packs are kept in ``DIR/.musehub/packs/<hex of mpack id>.mpack``.
A fetch reply may carry snapshot deltas (docs/wire.md §2.1); once a pack is verified
the full manifests of the snapshots it was fetched for (its wanted heads) are
written beside it in ``<hex>.manifests`` (a msgpack map {snapshot id:
manifest}); every other snapshot stays as it travelled and is rebuilt from its
deltas when needed, so a long history costs what it changed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import msgpack
import zstandard

from musehub_client.feedback import PhaseHook, no_phases
from musehub_client.files import read_files
from musehub_client.http import EXIT_SERVER, ClientError, HubClient, StreamCut, integrity_error
from musehub_client.state import PACKS_DIR, STATE_DIR
from musehub_client.threads import default_workers, run_batches
from musehub_core.errors import MalformedPack, TruncatedPack
from musehub_core.ids import blob_id, compute_commit_id, compute_snapshot_id, hex_of, is_id
from musehub_core.manifests import BaseLookup, Tree, apply_delta, delta_of, rebuild_snapshots, snapshot_dict
from musehub_core.mpack import BlobEntry, MPackWriter, PackContents, PackLimits, Readable, decode_blob, index_mpack
from musehub_core.protocol import INLINE_PACK_MAX_BYTES, PACK_STREAM, PUSH_INLINE, SNAPSHOT_DELTA
from musehub_core.records import CommitDict, commit_record

MANIFESTS_SUFFIX = ".manifests"
ENCODE_MIN_SIZE, ENCODE_MIN_SAVING, ENCODE_LEVEL = 512, 0.1, 3  # encode_blob's rule (see encode_many())
PARALLEL_MIN_BLOBS = 32  # fewer blobs than this are packed on the calling thread

# Limits for packs this client reads: as generous as memory allows (one blob at a time).
CLIENT_LIMITS = PackLimits(
    max_pack_bytes=1024**4,
    max_commits=10_000_000,
    max_snapshots=10_000_000,
    max_blobs=50_000_000,
    max_manifest_entries=10_000_000,
)


# --- the push pack ----------------------------------------------------------------------


def new_commit(
    manifest: Mapping[str, str], parents: list[str], *, branch: str, message: str, author: str
) -> CommitDict:
    """Return the commit of the tree *manifest* on top of *parents*, made now."""
    return commit_record(
        parent_ids=parents, snapshot_id=compute_snapshot_id(manifest), branch=branch, message=message, author=author
    )


def push_snapshot(
    commit: CommitDict, manifest: Mapping[str, str], base: tuple[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """Return the SnapshotDict a push sends for *commit*, whose tree is *manifest*.

    With *base* (snapshot id, manifest) the snapshot is a delta against it when
    that is smaller (docs/wire.md §2.1); without it, or for the base's own tree, full.
    """
    if base is not None and base[0] == commit["snapshot_id"]:
        base = None  # an unchanged tree: a delta would name itself as its base
    return snapshot_dict(commit["snapshot_id"], manifest, base=base, created_at=commit["committed_at"])


def make_commit(
    manifest: Mapping[str, str],
    parent: str | None,
    *,
    branch: str,
    message: str,
    author: str,
    base: tuple[str, Mapping[str, str]] | None = None,
) -> tuple[CommitDict, dict[str, Any]]:
    """Return (commit, snapshot dict) for *manifest* on top of *parent* (:func:`new_commit`, :func:`push_snapshot`)."""
    commit = new_commit(manifest, [parent] if parent else [], branch=branch, message=message, author=author)
    return commit, push_snapshot(commit, manifest, base)


def missing_blob_paths(
    client: HubClient, manifest: Mapping[str, str], known: Iterable[str] = (), *, root: Path | None = None
) -> dict[str, str]:
    """Return {object_id: a path holding it} for the blobs of *manifest* the hub lacks.

    Blobs in *known* (those of a parent the hub has) are not asked about. When
    the rest would fit in an inline pack (the hub lists ``push-inline``; their
    files under *root* take at most INLINE_PACK_MAX_BYTES), they are not asked
    about either: they are sent, as git sends what the remote head it knows
    lacks, and a blob the hub already held from elsewhere costs a few bytes
    instead of a round trip.
    """
    held = set(known)
    candidates: dict[str, str] = {}
    for relative, oid in manifest.items():
        if oid not in held:
            candidates.setdefault(oid, relative)
    if held and root is not None and PUSH_INLINE in client.capabilities and _fit_inline(root, candidates.values()):
        return candidates
    missing = set(client.filter_objects(candidates))
    return {oid: relative for oid, relative in candidates.items() if oid in missing}


def _fit_inline(root: Path, relatives: Iterable[str]) -> bool:
    """Return True when the files at *relatives* under *root* take at most INLINE_PACK_MAX_BYTES together."""
    total = 0
    for relative in relatives:
        try:
            total += (root / relative).stat().st_size
        except OSError:
            return False  # the pack build reports it
        if total > INLINE_PACK_MAX_BYTES:
            return False
    return True


def encode_many(compressor: zstandard.ZstdCompressor, raws: list[bytes], threads: int) -> list[tuple[Any, str]]:
    """Return (stored bytes, encoding) for each of *raws* by the rule of :func:`musehub_core.mpack.encode_blob`.

    The same rule (zstd level 3 from ENCODE_MIN_SIZE bytes, kept only when it
    saves ENCODE_MIN_SAVING), with the batch compressed at once on *threads*
    inside zstandard, in C with the GIL released: a blob costs no Python call.
    Compressed blobs come back as buffers (bytes-like) over one allocation.
    Where that is not available (zstandard's CFFI backend) each blob is
    compressed in turn.
    """
    out: list[tuple[Any, str]] = [(raw, "") for raw in raws]
    big = [i for i, raw in enumerate(raws) if len(raw) >= ENCODE_MIN_SIZE]
    if not big:
        return out
    sources = [raws[i] for i in big]
    try:
        packed: Iterable[Any] = iter(compressor.multi_compress_to_buffer(sources, threads=threads))
    except NotImplementedError:  # pragma: no cover - the C backend has it
        packed = [compressor.compress(raw) for raw in sources]
    for i, stored in zip(big, packed, strict=True):
        if len(stored) <= len(raws[i]) * (1 - ENCODE_MIN_SAVING):
            out[i] = (stored, "zstd")
    return out


# A file removed since the scan, or replaced by a symlink or something that is not a regular file.
_GONE = {errno.ENOENT, errno.ELOOP, errno.EINVAL}


def _read_batch(root: str, batch: list[tuple[str, str]]) -> tuple[list[str], list[bytes]]:
    """Read and check the blobs of *batch* ((object id, manifest path)); return (ids, raw bytes)."""
    ids = [oid for oid, _relative in batch]
    raws: list[bytes] = []
    for oid, (_oid, relative), raw in zip(ids, batch, read_files(root, [r for _o, r in batch]), strict=True):
        if isinstance(raw, OSError):
            if raw.errno in _GONE:
                raise ClientError(f"{relative} was removed or replaced while pushing; push again")
            raise raw
        if blob_id(raw) != oid:
            raise ClientError(f"{relative} changed while pushing; push again")
        raws.append(raw)
    return ids, raws


def build_push_pack(
    out: IO[bytes],
    root: Path,
    *,
    commit: Mapping[str, Any],
    snapshot: Mapping[str, Any],
    blob_paths: Mapping[str, str],
    branch: str,
    workers: int | None = None,
    sizes: Mapping[str, int] | None = None,
) -> tuple[str, int]:
    """Stream one commit, its snapshot and the blobs {object id: manifest path} into *out*; return (key, size).

    A pipeline: batches of files are read and hashed on threads
    (:func:`~musehub_client.files.read_files` releases the GIL for a whole
    batch), a bounded window ahead of the calling thread, which compresses each
    batch on *workers* threads inside zstandard and writes it in *blob_paths*
    order. *sizes* ({object id: bytes}, optional) lets batches be cut by size.
    A file whose content no longer hashes to its manifest id (edited during the
    push) raises ClientError; one that can no longer be read raises its OSError.
    """
    writer = MPackWriter(out)
    writer.write_commits([commit])
    writer.write_snapshots([snapshot])
    writer.begin_blobs(len(blob_paths))
    known = sizes or {}
    work = [(oid, relative, known.get(oid, 4096)) for oid, relative in blob_paths.items()]
    threads = 1 if len(blob_paths) < PARALLEL_MIN_BLOBS else workers or default_workers()
    compressor = zstandard.ZstdCompressor(level=ENCODE_LEVEL)
    read = functools.partial(_read_batch, os.fspath(root))
    # Every batch goes to a thread: reading one is a single GIL-free call, however small its files.
    for ids, raws in run_batches(read, work, workers=threads, name="musehub-pack", parallel_min_bytes=0):
        encoded = encode_many(compressor, raws, threads)
        writer.write_blobs([(oid, stored, encoding) for oid, (stored, encoding) in zip(ids, encoded, strict=True)])
    return writer.finish({branch: commit["commit_id"]})


# --- verifying downloaded packs -----------------------------------------------------------


class UnknownBase(ClientError):
    """A downloaded pack holds a snapshot delta whose base this client does not hold (exit 6)."""

    def __init__(self, message: str, bases: list[str]) -> None:
        super().__init__(f"integrity check failed: {message}", EXIT_SERVER)
        self.bases = bases


@dataclass
class VerifiedPack:
    """A pack whose every blob, snapshot and commit id checked out."""

    contents: PackContents  # as it travelled: its snapshots may be deltas
    manifests: dict[str, dict[str, str]]  # the full manifests kept while verifying, by snapshot id

    def rebuilt(self) -> dict[str, dict[str, str]]:
        """Return the kept full manifests of snapshots that travelled as deltas."""
        deltas = {s["snapshot_id"] for s in self.contents.snapshots if "base" in s}
        return {sid: m for sid, m in self.manifests.items() if sid in deltas}


def verify_history(
    contents: PackContents, lookup: BaseLookup | None = None, *, keep: Iterable[str] | None = None
) -> dict[str, dict[str, str]]:
    """Rebuild and check every snapshot and commit id of a downloaded pack; return {snapshot id: full manifest}.

    Only the manifests of *keep* are returned (every one when *keep* is None):
    a long history is verified a few trees at a time. A delta's base is an
    earlier snapshot of the pack or one *lookup* returns (given the ids of the
    bases the pack does not hold; see :func:`musehub_core.manifests.rebuild_snapshots`).
    A base nobody holds raises :class:`UnknownBase`; any other mismatch ClientError (exit 6).
    """
    unknown: list[str] = []
    wanted = None if keep is None else set(keep)

    def find(ids: list[str]) -> Mapping[str, Mapping[str, str] | Tree]:
        found = dict(lookup(ids)) if lookup is not None and ids else {}
        unknown.extend(i for i in ids if i not in found)
        return found

    manifests: dict[str, dict[str, str]] = {}
    try:
        for snap, tree in rebuild_snapshots(contents.snapshots, find):
            if wanted is None or snap["snapshot_id"] in wanted:
                manifests[snap["snapshot_id"]] = snap.get("manifest", tree.manifest)
    except MalformedPack as exc:
        if unknown:
            raise UnknownBase(exc.message, unknown) from None
        raise integrity_error(exc.message) from None
    for commit in contents.commits:
        expected = compute_commit_id(
            commit["parent_ids"], commit["snapshot_id"], commit["message"], commit["committed_at"]
        )
        if expected != commit["commit_id"]:
            raise integrity_error(f"commit {commit['commit_id']} does not match its content")
    return manifests


class PackSink(Protocol):
    """Acts on a pack while it arrives (a clone writes its files): told the verified history, then each blob."""

    def history(self, contents: PackContents, manifests: Mapping[str, dict[str, str]]) -> Collection[str]:
        """Take the verified history; return the ids of the blobs to be handed to :meth:`blob`."""

    def blob(self, entry: BlobEntry, raw: bytes) -> None: ...

    def abandon(self) -> None:
        """Undo what was done: the transfer failed and may be tried again."""


class _Verification:
    """The checks of a pack being read: its history as soon as it is read (before the first blob), then blobs.

    Holds the full manifests of the snapshots of *keep_commits* (every one when None).
    """

    def __init__(self, lookup: BaseLookup | None, keep_commits: Iterable[str] | None, sink: PackSink | None) -> None:
        self.lookup = lookup
        self.wanted = None if keep_commits is None else set(keep_commits)
        self.sink = sink
        self.manifests: dict[str, dict[str, str]] = {}

    def history(self, contents: PackContents) -> Collection[str] | None:
        keep = None
        if self.wanted is not None:
            keep = {c["snapshot_id"] for c in contents.commits if c["commit_id"] in self.wanted}
        self.manifests = verify_history(contents, self.lookup, keep=keep)
        return self.sink.history(contents, self.manifests) if self.sink is not None else ()

    def index(self, stream: Readable) -> PackContents:
        """Read the pack from *stream* once, verifying every blob hash and id; raise ClientError on a bad pack."""
        try:
            return index_mpack(
                stream,
                limits=CLIENT_LIMITS,
                verify=True,
                on_history=self.history,
                on_blob=self.sink.blob if self.sink is not None else None,
            )
        except TruncatedPack:
            raise StreamCut("the pack ended early (the transfer was cut short)") from None
        except MalformedPack as exc:
            raise integrity_error(exc.message) from None


def _check_key(contents: PackContents, mpack_id: object, size: int | None) -> None:
    if is_id(mpack_id) and contents.digest != mpack_id:
        raise integrity_error(f"the pack hashes to {contents.digest}, not to its id {mpack_id}")
    if size is not None and contents.size != size:
        raise integrity_error(f"the pack is {contents.size} bytes, the hub announced {size}")


def verify_pack(
    path: Path,
    *,
    mpack_id: object = None,
    size: int | None = None,
    lookup: BaseLookup | None = None,
    keep_commits: Iterable[str] | None = None,
) -> VerifiedPack:
    """Index the pack at *path* verifying every blob hash and every id; check its key and size if given.

    *lookup* returns the manifests of delta bases the pack does not hold (see :func:`verify_history`).
    With *keep_commits* only the manifests of those commits' snapshots are kept (every one otherwise).
    """
    verification = _Verification(lookup, keep_commits, None)
    with open(path, "rb") as handle:
        contents = verification.index(handle)
    _check_key(contents, mpack_id, size)
    return VerifiedPack(contents, verification.manifests)


def read_blob(handle: IO[bytes], entry: BlobEntry) -> bytes:
    """Return the raw bytes of *entry* read at its (offset, length) in the open pack, hash re-checked."""
    handle.seek(entry.offset)
    return blob_of(handle.read(entry.length), entry)


class PackReader:
    """Reads blobs of one pack file from any thread (``os.pread``: no shared file position), hash re-checked."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def read(self, entry: BlobEntry) -> bytes:
        return blob_of(os.pread(self._fd, entry.length, entry.offset), entry)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> PackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def blob_of(stored: bytes, entry: BlobEntry) -> bytes:
    """Return the raw bytes of *entry* from its *stored* bytes, decoded and hash re-checked."""
    if len(stored) != entry.length:
        raise integrity_error(f"blob {entry.object_id} runs past the end of its pack")
    try:
        raw = decode_blob(stored, entry.encoding, max_bytes=CLIENT_LIMITS.max_blob_bytes, where=entry.object_id)
    except MalformedPack as exc:
        raise integrity_error(exc.message) from None
    if blob_id(raw) != entry.object_id:
        raise integrity_error(f"blob {entry.object_id} does not hash to its id")
    return raw


# --- the local packs --------------------------------------------------------------------------


def manifests_path(pack: Path) -> Path:
    """Return where the full manifests of *pack*'s delta snapshots are kept."""
    return pack.with_suffix(MANIFESTS_SUFFIX)


def write_manifests(pack: Path, manifests: Mapping[str, Mapping[str, str]]) -> None:
    """Write *manifests* ({snapshot id: manifest}) beside *pack*, atomically."""
    target = manifests_path(pack)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    try:
        tmp.write_bytes(msgpack.packb({sid: dict(m) for sid, m in manifests.items()}, use_bin_type=True))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_manifests(pack: Path) -> dict[str, dict[str, str]]:
    """Return the manifests kept beside *pack* ({} when there are none or they cannot be read)."""
    try:
        data = msgpack.unpackb(manifests_path(pack).read_bytes(), raw=False, strict_map_key=True)
    except (OSError, ValueError, msgpack.UnpackException):
        return {}
    if not isinstance(data, dict):
        return {}
    return {sid: m for sid, m in data.items() if is_id(sid) and isinstance(m, dict)}


def kept_manifests(folder: Path, snapshot_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Return the full manifests among *snapshot_ids* kept beside the packs in *folder* (newest files first).

    Cheaper than :meth:`PackStore.open`, which indexes every pack: a fetch
    whose deltas build on the head an earlier fetch brought finds it here.
    """
    wanted = set(snapshot_ids)
    found: dict[str, dict[str, str]] = {}
    kept = []
    for path in folder.glob(f"*{MANIFESTS_SUFFIX}"):
        with contextlib.suppress(OSError):
            kept.append((path.stat().st_mtime_ns, path))
    for _, path in sorted(kept, reverse=True):
        if not wanted:
            break
        for sid, manifest in read_manifests(path.with_suffix(".mpack")).items():
            if sid in wanted:
                found[sid] = manifest
                wanted.discard(sid)
    return found


def remove_pack(pack: Path) -> None:
    """Delete a local pack and the manifests kept beside it."""
    pack.unlink(missing_ok=True)
    manifests_path(pack).unlink(missing_ok=True)


class PackStore:
    """The packs of one working directory (``.musehub/packs``): commits, snapshots and blob locations.

    Snapshots are kept as they travelled (full, or deltas against an earlier
    one); a full manifest is rebuilt when asked for, by replaying deltas from
    the nearest full one or from a manifest kept beside a pack, and the last
    few are remembered. So a long history costs what it changed, in memory as
    on disk. Reading a blob always re-checks its hash, so packs are indexed
    without verification here.
    """

    def __init__(self, keep: int = 4) -> None:
        self.commits: dict[str, dict[str, Any]] = {}
        self._snapshots: dict[str, Mapping[str, Any]] = {}  # as they travelled
        self._known: dict[str, dict[str, str]] = {}  # full manifests kept beside packs
        self._recent: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._keep = keep
        self.blobs: dict[str, tuple[Path, BlobEntry]] = {}

    def add(self, path: Path, contents: PackContents, manifests: Mapping[str, dict[str, str]] | None = None) -> None:
        """Take in a pack's commits, snapshots and blobs; *manifests* holds full manifests known for some of them."""
        for commit in contents.commits:
            self.commits[commit["commit_id"]] = commit
        for snap in contents.snapshots:
            sid = snap["snapshot_id"]
            if "manifest" in snap or sid not in self._snapshots:
                self._snapshots[sid] = snap
        self._known.update(manifests or {})
        for entry in contents.blobs:
            self.blobs.setdefault(entry.object_id, (path, entry))

    def snapshot(self, snapshot_id: str) -> dict[str, str] | None:
        """Return the full manifest of *snapshot_id*, or None when no chain of held snapshots rebuilds it."""
        chain: list[Mapping[str, Any]] = []
        current: str | None = snapshot_id
        start: Mapping[str, str] | None = None
        while current is not None and len(chain) <= len(self._snapshots):
            start = self._recent.get(current) or self._known.get(current)
            if start is not None:
                break
            snap = self._snapshots.get(current)
            if snap is None:
                return None
            if "manifest" in snap:
                start = snap["manifest"]
                break
            chain.append(snap)
            current = snap["base"]
        if start is None:
            return None
        manifest = dict(start)
        try:
            for snap in reversed(chain):
                delta = delta_of(snap)
                if delta is None:  # neither a manifest nor a base: not one a pack lets through
                    return None
                apply_delta(manifest, delta, in_place=True)
        except MalformedPack:
            return None
        if chain and compute_snapshot_id(manifest) != snapshot_id:
            return None
        self._recent[snapshot_id] = manifest
        self._recent.move_to_end(snapshot_id)
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)
        return dict(manifest)

    @classmethod
    def open(cls, root: Path) -> PackStore:
        store = cls()
        for path in sorted((root / STATE_DIR / PACKS_DIR).glob("*.mpack")):
            try:
                with open(path, "rb") as handle:
                    contents = index_mpack(handle, limits=CLIENT_LIMITS, verify=False)
            except (MalformedPack, OSError):
                continue  # a damaged pack only loses its content; blobs are re-checked on read
            store.add(path, contents, read_manifests(path))
        return store

    def manifest_of(self, commit_id: str) -> dict[str, str] | None:
        commit = self.commits.get(commit_id)
        return None if commit is None else self.snapshot(commit["snapshot_id"])

    def lookup(self, snapshot_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Return the full manifests this store can rebuild among *snapshot_ids* (a BaseLookup)."""
        found = {sid: self.snapshot(sid) for sid in snapshot_ids}
        return {sid: manifest for sid, manifest in found.items() if manifest is not None}

    def read(self, object_id: str) -> bytes:
        path, entry = self.blobs[object_id]
        with open(path, "rb") as handle:
            return read_blob(handle, entry)


# --- downloads ----------------------------------------------------------------------------------


@dataclass
class Downloaded:
    """A fetch pack on disk, verified."""

    path: Path
    contents: PackContents
    manifests: dict[str, dict[str, str]]  # the full manifests of the wanted commits' snapshots
    answer: dict[str, Any]


def download_pack(
    client: HubClient,
    want: list[str],
    have: list[str],
    folder: Path,
    *,
    deltas: bool = False,
    lookup: BaseLookup | None = None,
    sink: PackSink | None = None,
    phases: PhaseHook = no_phases,
) -> Downloaded:
    """Ask the hub for a pack taking *have* to *want*, stream it into *folder* and verify it as it arrives.

    The file is named ``<hex of mpack id>.mpack``; on failure nothing is left
    behind. With *deltas* the request asks for snapshot deltas; their bases are
    found in the pack or through *lookup*, and when some base is unknown here
    the pack is fetched again with full snapshots. *sink* is handed the
    verified history and each verified blob while the pack arrives (and told to
    abandon an attempt that failed). Phases: "fetch" (the ``mpack/fetch`` call;
    with ``pack-stream`` its reply carries the pack, read and verified as it
    arrives), "download" (from the URL a non-streaming hub answers, verified
    as it arrives), "verify" (the pack's key, and keeping it).
    """
    request = _Request(client, want, have, folder, lookup, sink, phases)
    try:
        return request.download(deltas=deltas)
    except UnknownBase as exc:
        if not deltas:
            raise
        client.out.note(
            f"the pack's snapshot deltas name a base this folder does not hold ({exc.bases[0]}); "
            "downloading full snapshots"
        )
        return request.download(deltas=False)


STREAM_ATTEMPTS = 3


@dataclass
class _Request:
    """One fetch's parameters, asked for up to STREAM_ATTEMPTS times while the transfer is cut short."""

    client: HubClient
    want: list[str]
    have: list[str]
    folder: Path
    lookup: BaseLookup | None
    sink: PackSink | None
    phases: PhaseHook

    def download(self, *, deltas: bool) -> Downloaded:
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            try:
                return self._once(deltas)
            except StreamCut as exc:
                if attempt == STREAM_ATTEMPTS:
                    raise
                self.client.out.note(f"{exc.message}; asking again")
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, deltas: bool) -> Downloaded:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".download-", suffix=".part", delete=False)  # noqa: SIM115
        part = Path(handle.name)
        verification = _Verification(self.lookup, self.want, self.sink)
        try:
            with handle:
                answer, contents = self._receive([SNAPSHOT_DELTA] if deltas else [], handle, verification)
            with self.phases("verify"):
                _check_key(contents, answer.get("mpack_id"), _announced_size(answer))
                verified = VerifiedPack(contents, verification.manifests)
                final = self.folder / f"{hex_of(contents.digest)}.mpack"
                rebuilt = verified.rebuilt()
                if rebuilt:
                    write_manifests(final, rebuilt)
                os.replace(part, final)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            if self.sink is not None:
                self.sink.abandon()
            raise
        return Downloaded(final, contents, verification.manifests, answer)

    def _receive(
        self, asked: list[str], handle: IO[bytes], verification: _Verification
    ) -> tuple[dict[str, Any], PackContents]:
        """Read the pack, keeping a copy in *handle*: from the fetch reply when the hub offers ``pack-stream``,
        else from the URL the fetch answers."""
        client = self.client
        if PACK_STREAM in client.capabilities:
            with self.phases("fetch"), client.fetch_stream(self.want, self.have, asked) as (answer, pieces):
                if pieces is not None:
                    return answer, verification.index(_Arriving(pieces, handle))
        else:
            with self.phases("fetch"):
                answer = client.fetch(self.want, self.have, asked)
        with self.phases("download"), client.download_stream(answer["mpack_url"], _announced_size(answer)) as pieces:
            return answer, verification.index(_Arriving(pieces, handle))


def _announced_size(answer: Mapping[str, Any]) -> int | None:
    """Return the pack size a fetch answer states (a streamed reply states none)."""
    size = answer.get("size")
    return size if isinstance(size, int) else None


class _Arriving:
    """A pack arriving in pieces, read as a stream; every byte read is also written to *copy*."""

    def __init__(self, pieces: Iterator[bytes], copy: IO[bytes]) -> None:
        self._pieces = pieces
        self._copy = copy
        self._rest = b""

    def read(self, n: int = -1) -> bytes:
        piece = self._rest or next(self._pieces, b"")
        if 0 <= n < len(piece):
            piece, self._rest = piece[:n], piece[n:]
        else:
            self._rest = b""
        if piece:
            self._copy.write(piece)
        return piece
