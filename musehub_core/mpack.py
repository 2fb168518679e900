"""The mpack codec (docs/wire.md §2): build, parse, and index packs in one streaming pass.

An mpack is one msgpack map ``{commits, snapshots, blobs, branch_heads}``.
:func:`index_mpack` reads a pack from a file-like object without holding it in
memory: it records, for every blob, the offset and length of its ``content``
bytes, verifies the blob's hash (decompressing zstd under a size limit, 1 MiB
at a time, so a blob's decoded bytes are only held when the caller keeps them),
and validates every commit and snapshot dict. :class:`MPackWriter` writes a
pack the same way, one blob at a time, hashing as it goes.

Hostile input is refused with :class:`MalformedPack`, never with a crash: a
commit's optional fields may nest at most :data:`MAX_FIELD_DEPTH` levels
(checked without recursion, before anything recursive such as ``json.dumps``
sees them), and values nested deeper than msgpack itself decodes (about 1,000
levels) are reported naming the commit or snapshot they are in.

This module imports no Django: the reference client uses it too.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import msgpack
import zstandard

from musehub_core.errors import MalformedPack, TruncatedPack
from musehub_core.ids import PREFIX, all_ids, blob_id, is_id
from musehub_core.manifests import all_paths_valid, validate_path

TOP_LEVEL_KEYS = ("commits", "snapshots", "blobs", "branch_heads")
ENCODINGS = ("", "zstd")
COMMIT_FIELDS = ("commit_id", "parent_ids", "snapshot_id", "branch", "message", "author", "committed_at")
# MWP's spelling of parent_ids: derived from the hashed parents on the way out, never stored as metadata.
DERIVED_FIELDS = ("metadata", "parent_commit_id", "parent2_commit_id")
_READ_SIZE = 1024 * 1024
# Stored blobs were size-checked when they arrived; reading them back only guards against absurd frames.
_MAX_DECODED = 2**40
# How many levels of lists and maps one optional commit field (``metadata``, ``structured_delta``, ...) may nest.
MAX_FIELD_DEPTH = 64
_FIELD_HINT = f"; a commit's optional fields may nest at most {MAX_FIELD_DEPTH} levels"
# Decoded bytes a caller keeps are collected while hashing up to this size; a bigger blob is hashed first
# and decoded a second time only once it proved good, so a zstd bomb never sits in memory.
_KEEP_IN_ONE_PASS = 16 * 1024 * 1024
# A zstd frame that declares at most this many bytes is decoded in one call into a buffer of exactly that
# size (the frame cannot write past it): most blobs are small, and a stream per blob costs twice the time.
_ONE_CALL_MAX = 1024 * 1024
# The largest window a zstd frame may ask its reader to keep (zstd allows 128 MiB by default): a stored blob is
# decoded on every download, so a crafted frame must not make each one allocate that much. Levels up to 19 use
# at most 8 MiB (our encoders use level 3: 2 MiB); a bigger one is refused at push and never decoded.
MAX_WINDOW_BYTES = 8 * 1024 * 1024
_local = threading.local()


def zstd_decompressor() -> zstandard.ZstdDecompressor:
    """Return a decompressor that refuses frames asking for a window over MAX_WINDOW_BYTES (ZstdError)."""
    return zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_BYTES)


def _decompressor() -> zstandard.ZstdDecompressor:
    """Return this thread's reusable decompressor (a ZstdDecompressor is not safe to share between threads)."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstd_decompressor()
    return dctx


@dataclass(frozen=True)
class PackLimits:
    """Upper bounds a pack must respect; every violation is a :class:`MalformedPack`."""

    max_pack_bytes: int = 2 * 1024**3
    max_commits: int = 100_000
    max_snapshots: int = 100_000
    max_blobs: int = 1_000_000
    max_blob_bytes: int = 512 * 1024**2
    max_manifest_entries: int = 1_000_000
    max_text_bytes: int = 1024 * 1024


@dataclass
class BlobEntry:
    """One blob as found in a pack: where its stored bytes are and what they decode to."""

    object_id: str
    offset: int
    length: int
    encoding: str
    size: int
    content: bytes | None = None  # the raw bytes, kept only when small enough


# Called once with the pack's commits and snapshots; returns the ids of the blobs to hand to the BlobVisitor
# (None: every blob). Only those are held decoded; the others are hashed 1 MiB at a time as usual.
HistoryVisitor = Callable[["PackContents"], "Collection[str] | None"]
BlobVisitor = Callable[[BlobEntry, bytes], None]


@dataclass
class PackContents:
    commits: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    blobs: list[BlobEntry] = field(default_factory=list)
    branch_heads: dict[str, str] = field(default_factory=dict)
    size: int = 0
    digest: str = ""


# --- validation helpers -------------------------------------------------------


def nests_deeper_than(value: object, limit: int) -> bool:
    """Return True when *value* nests lists, tuples or maps more than *limit* levels deep.

    A scalar is 0 levels deep, ``[]`` and ``{}`` are 1, ``{"a": [1]}`` is 2;
    map keys count like values. The walk uses an explicit stack, never
    recursion, so any depth that could be decoded can be checked.
    """
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = itertools.chain(item.keys(), item.values())
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list, tuple)))
    return False


def _preview(value: object) -> str:
    """Return a short repr of *value* for a message (containers by type: their repr may be huge or too deep)."""
    if isinstance(value, (str, bytes)):
        return repr(value[:80])[:80]
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)[:80]
    return f"a {type(value).__name__}"


def _require_id(value: object, where: str) -> str:
    if not is_id(value):
        raise MalformedPack(f"{where} must be 'sha256:' followed by 64 lowercase hex digits, got {_preview(value)}.")
    return value


def _require_str(value: object, where: str, limit: int, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise MalformedPack(f"{where} must be a string.")
    if len(value) > limit:
        raise MalformedPack(f"{where} is longer than {limit} characters.")
    return value


def _require_map(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedPack(f"{where} must be a map.")
    for key in value:
        if not isinstance(key, str):
            raise MalformedPack(f"{where} has a non-string key.")
    return value


def _require_json(value: object, where: str) -> None:
    """Raise MalformedPack unless *value* is plain JSON (no binary, NaN or NUL) that any database stores."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MalformedPack(f"{where} must be JSON values (no binary or NaN): {exc}.") from exc
    if "\\u0000" in text:
        raise MalformedPack(f"{where} contain NUL.")


def normalize_commit(raw: object, index: int, limits: PackLimits) -> dict[str, Any]:
    """Return a validated commit dict; unknown fields go to ``metadata`` unchanged."""
    where = f"commits[{index}]"
    data = _require_map(raw, where)
    for key in ("commit_id", "snapshot_id", "committed_at"):
        if key not in data:
            raise MalformedPack(f"{where} is missing '{key}'.")
    parents = data.get("parent_ids", [])
    if not isinstance(parents, list) or len(parents) > 16:
        raise MalformedPack(f"{where}.parent_ids must be a list of at most 16 ids.")
    parent_ids = [_require_id(p, f"{where}.parent_ids[{i}]") for i, p in enumerate(parents) if p is not None]
    metadata = {k: v for k, v in data.items() if k not in COMMIT_FIELDS and k not in DERIVED_FIELDS}
    if "metadata" in data:
        metadata["metadata"] = data["metadata"]
    for key, value in metadata.items():
        if nests_deeper_than(value, MAX_FIELD_DEPTH):
            raise MalformedPack(
                f"{where} ({_preview(data['commit_id'])}): optional field {key!r:.80} nests deeper than "
                f"{MAX_FIELD_DEPTH} levels of lists and maps."
            )
    _require_json(metadata, f"{where}'s optional fields")
    for key in ("branch", "message", "author", "committed_at"):
        if isinstance(data.get(key), str) and "\0" in data[key]:
            raise MalformedPack(f"{where}.{key} contains NUL.")
    return {
        "commit_id": _require_id(data["commit_id"], f"{where}.commit_id"),
        "parent_ids": parent_ids,
        "snapshot_id": _require_id(data["snapshot_id"], f"{where}.snapshot_id"),
        "branch": _require_str(data.get("branch"), f"{where}.branch", 255, optional=True),
        "message": _require_str(data.get("message"), f"{where}.message", limits.max_text_bytes, optional=True),
        "author": _require_str(data.get("author"), f"{where}.author", 255, optional=True),
        "committed_at": _require_str(data["committed_at"], f"{where}.committed_at", 64),
        "metadata": metadata,
    }


def _checked_entries(value: object, where: str, limits: PackLimits) -> dict[str, str]:
    entries = _require_map(value, where)
    if len(entries) > limits.max_manifest_entries:
        raise MalformedPack(f"{where} has more than {limits.max_manifest_entries} entries.")
    if all_paths_valid(list(entries)) and all_ids(entries.values()):  # one pass each over a big manifest
        return dict(entries)
    return {validate_path(path, where): _require_id(oid, f"{where}[{path!r}]") for path, oid in entries.items()}


def normalize_snapshot(raw: object, index: int, limits: PackLimits) -> dict[str, Any]:
    """Return a validated SnapshotDict: full (``manifest``) or a delta (``base``, ``set``, ``delete``).

    A delta's paths are checked here; whether its base exists and holds every
    deleted path is checked when it is rebuilt (:func:`musehub_core.manifests.rebuild_snapshots`).
    """
    where = f"snapshots[{index}]"
    data = _require_map(raw, where)
    if "snapshot_id" not in data:
        raise MalformedPack(f"{where} is missing 'snapshot_id'.")
    snapshot_id = _require_id(data["snapshot_id"], f"{where}.snapshot_id")
    created_at = data.get("created_at")
    snapshot: dict[str, Any] = {
        "snapshot_id": snapshot_id,
        "created_at": created_at[:64] if isinstance(created_at, str) else "",
    }
    if "manifest" in data and "base" in data:
        raise MalformedPack(f"{where} has both 'manifest' and 'base'; a snapshot is full or a delta, not both.")
    if "manifest" in data:
        snapshot["manifest"] = _checked_entries(data["manifest"], f"{where}.manifest", limits)
        return snapshot
    where = f"{where} ({snapshot_id})"  # a delta's problems name the snapshot they are about
    if "base" not in data:
        raise MalformedPack(f"{where} is missing 'manifest' (or 'base' for a delta).")
    snapshot["base"] = _require_id(data["base"], f"{where}.base")
    if snapshot["base"] == snapshot_id:
        raise MalformedPack(f"{where} names itself as its base.")
    snapshot["set"] = _checked_entries(data.get("set") or {}, f"{where}.set", limits)
    delete = data.get("delete") or []
    if not isinstance(delete, list) or len(delete) > limits.max_manifest_entries:
        raise MalformedPack(f"{where}.delete must be a list of at most {limits.max_manifest_entries} paths.")
    snapshot["delete"] = [validate_path(path, f"{where}.delete") for path in delete]
    if len(set(snapshot["delete"])) != len(snapshot["delete"]):
        raise MalformedPack(f"{where}.delete names a path twice.")
    overlap = set(snapshot["delete"]) & snapshot["set"].keys()
    if overlap:
        raise MalformedPack(f"{where}: path {min(overlap)!r} is both in 'set' and in 'delete'.")
    return snapshot


def _check_encoding(encoding: object, where: str) -> None:
    if encoding not in ENCODINGS:
        raise MalformedPack(f"{where} has unknown encoding {_preview(encoding)}; expected 'zstd' or none.")


def _inflate(
    content: bytes, encoding: str, *, max_bytes: int, where: str, keep_up_to: int = -1, expect: str | None = None
) -> tuple[bool, int, bytes | None]:
    """Decode a stored blob 1 MiB at a time; return (matches *expect*, raw size, raw bytes or None).

    The decoded bytes are hashed (when *expect* is given) and counted as they
    come, never held whole: they are returned only when the blob is no larger
    than *keep_up_to* and matches *expect*. Memory stays a few MiB (plus the
    zstd window the frame declares) whatever the blob inflates to. Raises
    MalformedPack past *max_bytes* or on a bad frame.
    """
    _check_encoding(encoding, where)
    if encoding == "":
        ok = expect is None or blob_id(content) == expect
        return ok, len(content), content if ok and len(content) <= keep_up_to else None
    try:
        declared = zstandard.frame_content_size(content)
    except zstandard.ZstdError as exc:
        raise MalformedPack(f"{where} is not a valid zstd frame: {exc}.") from exc
    if 0 <= declared <= min(_ONE_CALL_MAX, max_bytes):
        try:
            raw = _decompressor().decompress(content)
        except zstandard.ZstdError as exc:
            raise MalformedPack(f"{where} is not a valid zstd frame: {exc}.") from exc
        ok = expect is None or blob_id(raw) == expect
        return ok, len(raw), raw if ok and len(raw) <= keep_up_to else None
    digest = hashlib.sha256() if expect is not None else None
    kept: io.BytesIO | None = io.BytesIO() if keep_up_to >= 0 else None
    one_pass = min(keep_up_to, _KEEP_IN_ONE_PASS)
    size = 0
    try:
        with zstd_decompressor().stream_reader(content) as reader:
            while chunk := reader.read(_READ_SIZE):
                size += len(chunk)
                if size > max_bytes:
                    raise MalformedPack(f"{where} decompresses to more than {max_bytes} bytes.")
                if digest is not None:
                    digest.update(chunk)
                if kept is not None:
                    if size <= one_pass:
                        kept.write(chunk)
                    else:
                        kept = None
    except zstandard.ZstdError as exc:
        raise MalformedPack(f"{where} is not a valid zstd frame: {exc}.") from exc
    ok = digest is None or PREFIX + digest.hexdigest() == expect
    if not ok or size > keep_up_to:
        return ok, size, None
    if kept is None:  # bigger than one pass keeps: decode again, now bounded by the size just counted
        return ok, size, decode_blob(content, encoding, max_bytes=size, where=where)
    return ok, size, kept.getvalue()


def decode_blob(content: bytes, encoding: str, *, max_bytes: int, where: str = "blob") -> bytes:
    """Return the raw bytes of a stored blob, refusing anything that inflates past *max_bytes*."""
    if encoding == "":
        return content
    _check_encoding(encoding, where)
    try:
        declared = zstandard.frame_content_size(content)
    except zstandard.ZstdError as exc:
        raise MalformedPack(f"{where} is not a valid zstd frame: {exc}.") from exc
    if 0 <= declared <= min(_ONE_CALL_MAX, max_bytes):  # one call for a frame that states a small size
        try:
            return _decompressor().decompress(content)
        except zstandard.ZstdError as exc:
            raise MalformedPack(f"{where} is not a valid zstd frame: {exc}.") from exc
    out = io.BytesIO()
    try:
        with zstd_decompressor().stream_reader(content) as reader:
            while chunk := reader.read(_READ_SIZE):
                out.write(chunk)
                if out.tell() > max_bytes:
                    raise MalformedPack(f"{where} decompresses to more than {max_bytes} bytes.")
    except zstandard.ZstdError as exc:
        raise MalformedPack(f"{where} is not a valid zstd frame: {exc}.") from exc
    return out.getvalue()


def encode_blob(raw: bytes, *, min_size: int = 512, min_saving: float = 0.1) -> tuple[bytes, str]:
    """Return (stored bytes, encoding) for *raw*: zstd when it saves at least *min_saving*, else raw."""
    if len(raw) < min_size:
        return raw, ""
    packed = zstandard.ZstdCompressor(level=3).compress(raw)
    if len(packed) <= len(raw) * (1 - min_saving):
        return packed, "zstd"
    return raw, ""


def decode_verified(object_id: str, stored: bytes, encoding: str) -> bytes | None:
    """Return the raw bytes of a stored blob when they decode and hash to *object_id*, else None.

    Bytes that do not hash to *object_id* are never held whole (a blob over
    16 MiB is hashed in a streaming pass first, then decoded once it proved good).
    """
    try:
        ok, _, raw = _inflate(
            stored, encoding, max_bytes=_MAX_DECODED, where=object_id, keep_up_to=_MAX_DECODED, expect=object_id
        )
    except MalformedPack:
        return None
    return raw if ok else None


def verify_blob(object_id: str, stored: bytes, encoding: str) -> bool:
    """Return True when a stored blob decodes and hashes to *object_id*, holding only 1 MiB of it at a time."""
    try:
        return _inflate(stored, encoding, max_bytes=_MAX_DECODED, where=object_id, expect=object_id)[0]
    except MalformedPack:
        return False


class Readable(Protocol):
    """What reading a pack needs of a stream (a file, a socket's body, pieces as they arrive): read(n)
    returns at most n bytes (all the rest for -1), b"" at the end."""

    def read(self, n: int = -1, /) -> bytes: ...


def skip_bytes(stream: Readable, count: int) -> bool:
    """Read and discard *count* bytes of *stream* (which may not seek); return False if it ends first."""
    while count > 0:
        data = stream.read(min(count, _READ_SIZE))
        if not data:
            return False
        count -= len(data)
    return True


# --- reading ------------------------------------------------------------------


class _HashingReader:
    """Wrap a binary stream, hashing and counting every byte read through it."""

    def __init__(self, stream: Readable, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.count += len(data)
        if self.count > self._limit:
            raise MalformedPack(f"The pack is larger than the limit of {self._limit} bytes.")
        self.hash.update(data)
        return data


def _unpacker(stream: Any, limits: PackLimits) -> msgpack.Unpacker:
    return msgpack.Unpacker(
        stream,
        raw=False,
        strict_map_key=True,
        read_size=_READ_SIZE,
        max_buffer_size=limits.max_blob_bytes + 16 * 1024**2,
        max_bin_len=limits.max_blob_bytes,
        max_str_len=max(limits.max_text_bytes, 64 * 1024),
        max_array_len=max(limits.max_blobs, limits.max_commits, limits.max_snapshots, 16),
        max_map_len=max(limits.max_manifest_entries, 64),
    )


def _read_blob(
    unpacker: msgpack.Unpacker,
    index: int,
    limits: PackLimits,
    keep_content_up_to: int,
    keep_ids: set[str] | None,
    verify: bool,
    on_blob: BlobVisitor | None = None,
    visited: Collection[str] | None = None,
) -> BlobEntry:
    where = f"blobs[{index}]"
    fields: dict[str, Any] = {}
    offset = length = -1
    try:
        entries = unpacker.read_map_header()
    except ValueError as exc:
        raise MalformedPack(f"{where} must be a map.") from exc
    for _ in range(entries):
        key = unpacker.unpack()
        if key == "content":
            value = unpacker.unpack()
            if not isinstance(value, bytes):
                raise MalformedPack(f"{where}.content must be binary.")
            length = len(value)
            offset = unpacker.tell() - length
            fields["content"] = value
        elif key in ("object_id", "encoding"):
            fields[key] = unpacker.unpack()
        else:
            unpacker.skip()
    if "object_id" not in fields or "content" not in fields:
        raise MalformedPack(f"{where} needs 'object_id' and 'content'.")
    oid = _require_id(fields["object_id"], f"{where}.object_id")
    encoding = fields.get("encoding") or ""
    _check_encoding(encoding, where)
    wanted = keep_ids is not None and oid in keep_ids
    if on_blob is not None and visited is not None and oid not in visited:
        on_blob = None  # the visitor does not want this one: hashed as it streams, never held whole
    if not (verify or wanted or keep_content_up_to >= 0 or encoding == "" or on_blob is not None):
        return BlobEntry(object_id=oid, offset=offset, length=length, encoding=encoding, size=-1)
    # Hash and count the decoded bytes in 1 MiB steps; keep them only when asked to (never a bomb's).
    ok, size, kept = _inflate(
        fields["content"],
        encoding,
        max_bytes=limits.max_blob_bytes,
        where=where,
        keep_up_to=limits.max_blob_bytes if wanted or on_blob is not None else keep_content_up_to,
        expect=oid if verify else None,
    )
    if not ok:
        raise MalformedPack(f"{where}: content does not hash to its object id {oid}.")
    entry = BlobEntry(object_id=oid, offset=offset, length=length, encoding=encoding, size=size)
    if on_blob is not None and kept is not None:
        _visit(on_blob, entry, kept)
    if wanted or (kept is not None and size <= keep_content_up_to):
        entry.content = kept
    return entry


class _VisitorFailed(Exception):
    """Carries an error a visitor raised through index_mpack's handling of malformed msgpack."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _visit(visitor: Callable[..., Any], *args: Any) -> Any:
    """Call *visitor*; whatever it raises reaches index_mpack's caller as it was raised."""
    try:
        return visitor(*args)
    except Exception as exc:
        raise _VisitorFailed(exc) from exc


def _unpack_item(unpacker: msgpack.Unpacker, where: str, hint: str = "") -> Any:
    """Unpack one commit or snapshot dict, naming it when it nests deeper than msgpack decodes."""
    try:
        return unpacker.unpack()
    except msgpack.StackError as exc:
        raise MalformedPack(f"{where} nests lists and maps too deeply to be read (over 1,000 levels){hint}.") from exc


def _read_array(unpacker: msgpack.Unpacker, name: str, limit: int) -> int:
    try:
        count = unpacker.read_array_header()
    except ValueError as exc:
        raise MalformedPack(f"'{name}' must be a list.") from exc
    if count > limit:
        raise MalformedPack(f"The pack has {count} {name}; the limit is {limit}.")
    return count


def index_mpack(
    stream: Readable,
    *,
    limits: PackLimits | None = None,
    keep_content_up_to: int = -1,
    keep_ids: set[str] | None = None,
    verify: bool = True,
    on_history: HistoryVisitor | None = None,
    on_blob: BlobVisitor | None = None,
) -> PackContents:
    """Read a whole pack from *stream* once and return what it holds.

    Records every blob's byte range, verifies its hash (unless *verify* is
    false), validates commits and snapshots, and returns the SHA-256 key of the
    bytes read. Blob contents no larger than *keep_content_up_to*, and those of
    *keep_ids*, are kept (decoded).

    A reader that acts while the pack is still arriving (a clone writing files)
    passes *on_history*, called once with the contents so far as soon as the
    commits and snapshots are read (before the first blob when the pack puts
    them first, as every MPackWriter does; else at the end), and *on_blob*,
    called from then on with the entry and decoded bytes (after its hash
    checked out, when verifying) of each blob whose id is in what
    *on_history* returned (every blob when it returned None). A top-level
    section may appear once, so nothing read after *on_history* escapes it.
    Raises MalformedPack naming the first problem found.
    """
    limits = limits or PackLimits()
    reader = _HashingReader(stream, limits.max_pack_bytes)
    unpacker = _unpacker(reader, limits)
    contents = PackContents()
    read: set[str] = set()
    history_told = False
    visited: Collection[str] | None = None

    def tell_history() -> None:
        nonlocal history_told, visited
        history_told = True
        if on_history is not None:
            visited = _visit(on_history, contents)

    try:
        try:
            sections = unpacker.read_map_header()
        except ValueError as exc:
            raise MalformedPack("The pack must be a msgpack map at the top level.") from exc
        for _ in range(sections):
            key = unpacker.unpack()
            if isinstance(key, str):
                if key in read:
                    raise MalformedPack(f"The pack has a second {_preview(key)} section.")
                read.add(key)
            if key == "commits":
                for i in range(_read_array(unpacker, "commits", limits.max_commits)):
                    raw = _unpack_item(unpacker, f"commits[{i}]", _FIELD_HINT)
                    contents.commits.append(normalize_commit(raw, i, limits))
            elif key == "snapshots":
                for i in range(_read_array(unpacker, "snapshots", limits.max_snapshots)):
                    contents.snapshots.append(normalize_snapshot(_unpack_item(unpacker, f"snapshots[{i}]"), i, limits))
            elif key == "blobs":
                if not history_told and {"commits", "snapshots"} <= read:
                    tell_history()
                visit = on_blob if history_told else None
                for i in range(_read_array(unpacker, "blobs", limits.max_blobs)):
                    contents.blobs.append(
                        _read_blob(unpacker, i, limits, keep_content_up_to, keep_ids, verify, visit, visited)
                    )
            elif key == "branch_heads":
                heads = _require_map(unpacker.unpack(), "branch_heads")
                contents.branch_heads = {
                    _require_str(b, "branch_heads key", 255): _require_id(c, f"branch_heads[{b!r}]")
                    for b, c in heads.items()
                }
            else:
                unpacker.skip()
        end = unpacker.tell()
    except MalformedPack:
        raise
    except _VisitorFailed as failed:
        raise failed.error from None  # the caller's own error, not a verdict on the pack
    except msgpack.OutOfData as exc:
        raise TruncatedPack("The pack is truncated.") from exc
    except (msgpack.StackError, RecursionError) as exc:
        raise MalformedPack("The pack nests lists and maps too deeply to be read.") from exc
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedPack(f"The pack is not a valid msgpack map: {exc}.") from exc
    if end != reader.count or reader.read(1):
        raise MalformedPack("The pack has trailing bytes after its map.")
    contents.size = reader.count
    contents.digest = PREFIX + reader.hash.hexdigest()
    if not history_told:
        tell_history()
    return contents


def parse_wire_mpack(data: bytes, *, limits: PackLimits | None = None) -> dict[str, Any]:
    """Return the pack in *data* as a plain dict (blobs with their stored ``content``).

    Validates shape and types like :func:`index_mpack` but does not decode or
    verify blobs; use it for small packs and tests.
    """
    limits = limits or PackLimits()
    if len(data) > limits.max_pack_bytes:
        raise MalformedPack(f"The pack is larger than the limit of {limits.max_pack_bytes} bytes.")
    try:
        payload = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except msgpack.StackError as exc:
        raise MalformedPack(
            f"The pack nests lists and maps too deeply to be read (over 1,000 levels){_FIELD_HINT}."
        ) from exc
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedPack(f"The pack is not valid msgpack: {exc}.") from exc
    payload = _require_map(payload, "The pack")
    result: dict[str, Any] = {key: payload.get(key, {} if key == "branch_heads" else []) for key in TOP_LEVEL_KEYS}
    for key in ("commits", "snapshots", "blobs"):
        if not isinstance(result[key], list):
            raise MalformedPack(f"'{key}' must be a list.")
    result["commits"] = [normalize_commit(c, i, limits) for i, c in enumerate(result["commits"])]
    result["snapshots"] = [normalize_snapshot(s, i, limits) for i, s in enumerate(result["snapshots"])]
    for i, blob in enumerate(result["blobs"]):
        blob = _require_map(blob, f"blobs[{i}]")
        _require_id(blob.get("object_id"), f"blobs[{i}].object_id")
        if not isinstance(blob.get("content"), bytes):
            raise MalformedPack(f"blobs[{i}].content must be binary.")
    return result


# --- writing ------------------------------------------------------------------


def commit_to_wire(commit: Mapping[str, Any]) -> dict[str, Any]:
    """Return the :class:`~musehub_core.records.CommitDict` of a normalized commit (metadata back at the top level)."""
    core = {key: commit.get(key, "" if key != "parent_ids" else []) for key in COMMIT_FIELDS}
    return {**(commit.get("metadata") or {}), **core}


_OBJECT_ID_KEY, _ENCODING_KEY, _CONTENT_KEY = (msgpack.packb(key) for key in ("object_id", "encoding", "content"))
_MAP_HEADERS = {size: msgpack.Packer().pack_map_header(size) for size in (2, 3)}


def _bin_header(length: int) -> bytes:
    """Return the msgpack bin header for *length* bytes (msgpack's Packer has no public one)."""
    if length < 2**8:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 2**16:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


class MPackWriter:
    """Write an mpack to a binary stream section by section, hashing as it goes.

    Call :meth:`write_commits`, :meth:`write_snapshots`, :meth:`begin_blobs`
    with the blob count, :meth:`write_blob` that many times, then
    :meth:`finish` with the branch heads; it returns ``(key, size)``.
    """

    def __init__(self, stream: IO[bytes], *, hashing: bool = True) -> None:
        self._stream = stream
        self._packer = msgpack.Packer(use_bin_type=True)
        self._hash = hashlib.sha256() if hashing else None
        self.size = 0
        self._write(self._packer.pack_map_header(4))

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        if self._hash is not None:
            self._hash.update(data)
        self.size += len(data)

    def _write_list(self, name: str, items: list[Any]) -> None:
        self._write(self._packer.pack(name))
        self._write(self._packer.pack_array_header(len(items)))
        for item in items:
            self._write(self._packer.pack(item))

    def write_commits(self, commits: Iterable[Mapping[str, Any]]) -> None:
        self._write_list("commits", [commit_to_wire(c) for c in commits])

    def write_snapshots(self, snapshots: Iterable[Mapping[str, Any]]) -> None:
        self._write_list("snapshots", list(snapshots))

    def begin_blobs(self, count: int) -> None:
        self._write(self._packer.pack("blobs"))
        self._write(self._packer.pack_array_header(count))

    def write_blob(self, object_id: str, content: bytes, encoding: str = "") -> int:
        """Write one blob entry and return the offset of its content bytes in the pack."""
        # {"object_id": ..., "encoding"?: ..., "content": <bin>} with the header written in one piece.
        pack = self._packer.pack
        fields = [_OBJECT_ID_KEY, pack(object_id)]
        if encoding:
            fields += [_ENCODING_KEY, pack(encoding)]
        self._write(b"".join([_MAP_HEADERS[len(fields) // 2 + 1], *fields, _CONTENT_KEY, _bin_header(len(content))]))
        offset = self.size
        self._write(content)
        return offset

    def write_blobs(self, blobs: Iterable[tuple[str, Any, str]]) -> None:
        """Write the entries of *blobs* ((object id, content, encoding); content any bytes-like) in one write.

        The same bytes as :meth:`write_blob` for each, joined: one write and one
        hash update per batch instead of two per blob.
        """
        pack = self._packer.pack
        pieces: list[Any] = []
        for object_id, content, encoding in blobs:
            if encoding:
                pieces += [_MAP_HEADERS[3], _OBJECT_ID_KEY, pack(object_id), _ENCODING_KEY, pack(encoding)]
            else:
                pieces += [_MAP_HEADERS[2], _OBJECT_ID_KEY, pack(object_id)]
            pieces += [_CONTENT_KEY, _bin_header(len(content)), content]
        self._write(b"".join(pieces))

    def write_blob_stream(self, object_id: str, stream: Readable, length: int) -> int:
        """Write one raw blob of *length* bytes copied from *stream*; return its content offset.

        Raises MalformedPack if the stream's bytes do not hash to *object_id* or
        run short (the pack being written is then unusable and must be discarded).
        """
        self._write(self._packer.pack_map_header(2))
        self._write(self._packer.pack("object_id"))
        self._write(self._packer.pack(object_id))
        self._write(self._packer.pack("content"))
        self._write(_bin_header(length))
        offset = self.size
        digest = hashlib.sha256()
        remaining = length
        while remaining:
            chunk = stream.read(min(remaining, _READ_SIZE))
            if not chunk:
                raise MalformedPack(f"Object {object_id} is shorter than its announced {length} bytes.")
            digest.update(chunk)
            self._write(chunk)
            remaining -= len(chunk)
        if PREFIX + digest.hexdigest() != object_id:
            raise MalformedPack(f"The uploaded bytes of object {object_id} do not hash to its id.")
        return offset

    def finish(self, branch_heads: Mapping[str, str] | None = None) -> tuple[str, int]:
        """Write the branch heads; return (the pack's key, or '' for a writer made without hashing, size)."""
        self._write(self._packer.pack("branch_heads"))
        self._write(self._packer.pack(dict(branch_heads or {})))
        return (PREFIX + self._hash.hexdigest() if self._hash is not None else ""), self.size


def build_wire_mpack(payload: Mapping[str, Any]) -> bytes:
    """Return the bytes of an mpack holding *payload*'s commits, snapshots, blobs and heads.

    Commits are :class:`~musehub_core.records.CommitDict` as they travel
    (optional fields at the top level) and are written as given, not as
    normalized commits: :meth:`MPackWriter.write_commits` would drop their
    top-level metadata. Blobs are dicts ``{object_id, content,
    encoding?}``; content is stored as given.
    """
    out = io.BytesIO()
    writer = MPackWriter(out)
    writer._write_list("commits", [dict(c) for c in payload.get("commits") or []])
    writer.write_snapshots(list(payload.get("snapshots") or []))
    blobs: list[Mapping[str, Any]] = list(payload.get("blobs") or [])
    writer.begin_blobs(len(blobs))
    for blob in blobs:
        writer.write_blob(blob["object_id"], blob["content"], blob.get("encoding") or "")
    writer.finish(payload.get("branch_heads") or {})
    return out.getvalue()
