"""What a working folder knows about its remote: ``DIR/.musehub/state.json``, and the stat cache.

``state.json`` = ``{"url", "branch", "head", "manifest_file", "snapshot_id",
"commits": [commit ids], "fetched_head"?}``; ``manifest_file`` names
``manifest-<hash>.msgpack`` beside it, the manifest of ``head`` ({path:
object_id}, msgpack: a fetch that leaves it unchanged rewrites only the small
``state.json``), and ``snapshot_id`` is that manifest's snapshot id. Older
clients kept the manifest in ``state.json`` itself (``"manifest"``); that
is still read, and rewritten the new way on the next save. ``stat-cache.msgpack`` remembers each file's size, mtime, inode and
object id so unchanged files are not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgpack

from musehub_client.http import EXIT_ERROR, ClientError, normalize_url
from musehub_core.ids import all_ids, compute_snapshot_id, is_id

STATE_DIR = ".musehub"
STATE_FILE = "state.json"
PACKS_DIR = "packs"
TMP_DIR = "tmp"
STAT_CACHE_FILE = "stat-cache.msgpack"  # msgpack: 4x faster to write than JSON for 25,000 entries
STAT_CHANGES_FILE = "stat-cache-changes.msgpack"  # what changed since the main file was written
MANIFEST_FILES = "manifest-*.msgpack"  # the head's manifest, named by the hash of its bytes
_MANIFEST_NAME = re.compile(r"manifest-[0-9a-f]{32}\.msgpack")
SKIPPED_FILE = "skipped.txt"  # what the last push could not store, one "path<TAB>reason" a line
MAX_HAVE = 10_000  # the hub refuses more have ids than this in one fetch
# A file modified this recently may change again within the same mtime tick: hash it, never cache it.
RACY_SECONDS = 2


ID_LENGTH = 71  # "sha256:" + 64 hex


@dataclass(frozen=True)
class _StoredManifest:
    """The manifest as the state files hold it: the dict loaded or saved, its file, its snapshot id."""

    manifest: dict[str, str]
    name: str
    snapshot_id: str


@dataclass
class State:
    """What a working directory knows about its remote (``DIR/.musehub/state.json`` and its manifest file).

    ``manifest`` is replaced, never edited in place: the state remembers the
    dict it loaded or saved, so saving an unchanged manifest (a fetch) writes
    only the small ``state.json``, and :meth:`snapshot_id` is not recomputed.
    """

    url: str
    branch: str
    head: str | None
    manifest: dict[str, str] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)
    fetched_head: str | None = None
    _stored: _StoredManifest | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def path(root: Path) -> Path:
        return root / STATE_DIR / STATE_FILE

    @classmethod
    def load(cls, root: Path) -> State | None:
        """Return the state of *root*, None when it has none; a damaged file raises ClientError.

        Reads the manifest from the file ``state.json`` names (or, as older
        clients wrote it, from ``state.json`` itself).
        """
        path = cls.path(root)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            stored = None if "manifest" in data else _read_manifest(root, data["manifest_file"], data["snapshot_id"])
            state = cls(
                url=normalize_url(data["url"]),
                branch=str(data["branch"]),
                head=data.get("head") or None,
                manifest=dict(data["manifest"] or {}) if stored is None else stored.manifest,
                commits=list(data.get("commits") or []),
                fetched_head=data.get("fetched_head") or None,
                _stored=stored,
            )
        except (OSError, ValueError, KeyError, TypeError, ClientError, msgpack.UnpackException) as exc:
            raise ClientError(f"{path} is damaged ({exc}); clone again", EXIT_ERROR) from None
        ids = [i for i in (state.head, state.fetched_head) if i is not None]
        # A manifest file's bytes hash to its name, so it is as written: checked for shape, not digit by digit.
        values = list(state.manifest.values())
        if stored is not None:  # as written: msgpack (strict_map_key) gives str keys for what this client writes
            manifest_ok = _id_shaped(values)
        else:
            manifest_ok = all_ids(values) and all(type(p) is str for p in state.manifest)
        if not manifest_ok or not all_ids([*ids, *state.commits]):
            raise ClientError(f"{path} is damaged (an id is not 'sha256:' + 64 hex); clone again", EXIT_ERROR)
        return state

    def snapshot_id(self) -> str:
        """Return the snapshot id of ``manifest`` (as the state file recorded it while the manifest is the one read)."""
        if self._stored is not None and self._stored.manifest is self.manifest:
            return self._stored.snapshot_id
        return compute_snapshot_id(self.manifest)

    def save(self, root: Path, *, snapshot_id: str | None = None) -> None:
        """Write the state atomically: a changed manifest to a new file first, then ``state.json`` naming it.

        *snapshot_id* is the manifest's snapshot id when the caller knows it (a
        commit just made or fetched): it is not computed again.
        """
        folder = root / STATE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        stored = self._stored
        if stored is None or stored.manifest is not self.manifest or not (folder / stored.name).is_file():
            stored = _write_manifest(folder, self.manifest, snapshot_id or compute_snapshot_id(self.manifest))
        data: dict[str, Any] = {
            "url": self.url,
            "branch": self.branch,
            "head": self.head,
            "manifest_file": stored.name,
            "snapshot_id": stored.snapshot_id,
            "commits": list(dict.fromkeys(self.commits)),
        }
        if self.fetched_head and self.fetched_head != self.head:
            data["fetched_head"] = self.fetched_head
        path = self.path(root)
        tmp = path.with_name(f".{STATE_FILE}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        self._stored = stored
        for old in folder.glob(MANIFEST_FILES):
            if old.name != stored.name:
                old.unlink(missing_ok=True)

    def have(self) -> list[str]:
        """Return the commit ids to send as ``have``: heads first, then newest first, at most MAX_HAVE."""
        ordered = [c for c in (self.fetched_head, self.head) if c]
        ordered.extend(reversed(self.commits))
        return list(dict.fromkeys(ordered))[:MAX_HAVE]


def load_state(directory: str | Path) -> tuple[Path, State]:
    """Return (root, state) of a working folder, or raise ClientError when it has no state."""
    root = Path(directory)
    state = State.load(root)
    if state is None:
        raise ClientError(f"{root} is not a MuseHub working folder (no {STATE_DIR}/{STATE_FILE}); clone first")
    return root, state


def _write_manifest(folder: Path, manifest: dict[str, str], snapshot_id: str) -> _StoredManifest:
    """Write *manifest* to ``manifest-<its hash>.msgpack`` in *folder* (atomically; kept if already there)."""
    data = msgpack.packb(manifest, use_bin_type=True)
    name = f"manifest-{hashlib.sha256(data).hexdigest()[:32]}.msgpack"
    target = folder / name
    if not target.is_file():
        tmp = folder / f".{name}.{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return _StoredManifest(manifest, name, snapshot_id)


def _read_manifest(root: Path, name: object, snapshot_id: object) -> _StoredManifest:
    """Read the manifest file *name* of ``state.json``; its bytes must hash to its name (ValueError otherwise)."""
    if not isinstance(name, str) or not _MANIFEST_NAME.fullmatch(name) or not is_id(snapshot_id):
        raise ValueError("it names no manifest file")
    data = (root / STATE_DIR / name).read_bytes()
    if hashlib.sha256(data).hexdigest()[:32] != name[len("manifest-") : -len(".msgpack")]:
        raise ValueError(f"{name} does not hash to its name")
    manifest = msgpack.unpackb(data, raw=False, strict_map_key=True)
    if not isinstance(manifest, dict):
        raise ValueError(f"{name} holds no manifest")
    return _StoredManifest(manifest, name, snapshot_id)


Entry = tuple[int, int, int, str]  # (size, mtime_ns, inode, object id)


class StatCache:
    """``DIR/.musehub/stat-cache.msgpack``: each file's size, mtime, inode and object id, like git's index.

    A file whose size, mtime and inode match its entry keeps its object id
    without being read. Files modified in the last RACY_SECONDS are never
    recorded (they may change again within the same mtime tick). Only paths
    that were valid manifest paths when recorded are ever in it.

    On disk it is one msgpack array ``[3, generation, paths, sizes,
    mtimes_ns, inodes, object ids]`` (columns: a third of the time to load
    that a map of 25,000 four-item lists takes), and what changed since it was
    written in ``stat-cache-changes.msgpack``: ``[3, generation, paths,
    sizes, mtimes_ns, inodes, object ids, removed paths]``, read only when its
    generation is the main file's. A push that changed a few files writes only
    the small file (rewriting 25,000 entries took 7 ms of every push); the
    main file is rewritten once the changes reach an eighth of it. Caches
    older clients wrote (``[2, paths, ...]``, or a map ``{path: [size,
    mtime_ns, inode, object id]}``) are still read; a damaged one is only a
    slower scan. Every entry is a fact that held when it was recorded: one
    that no longer does never matches a file's stat.
    """

    FORMAT = 3
    CHANGES_MIN = 1_000  # changes of up to this many paths never rewrite the main file

    def __init__(self, root: Path) -> None:
        self.path = root / STATE_DIR / STAT_CACHE_FILE
        self.changes_path = root / STATE_DIR / STAT_CHANGES_FILE
        loaded = _unpack_file(self.path)
        self._old, self._generation = _cache_entries(loaded)
        self._rewrite = self._generation is None and bool(self._old)  # an older client's format
        self._changed: dict[str, Entry] = {}  # the changes file as read, both parts applied to _old
        self._removed: set[str] = set()
        if self._generation is not None:
            self._read_changes()
        self._fresh: dict[str, Entry] = {}
        self._recorded: dict[str, Entry] = {}
        self._missed: list[str] = []
        self._racy_after = (time.time() - RACY_SECONDS) * 1e9

    def _read_changes(self) -> None:
        loaded = _unpack_file(self.changes_path)
        if not (isinstance(loaded, list) and len(loaded) == 8 and loaded[:2] == [self.FORMAT, self._generation]):
            return
        changed, _ = _cache_entries([self.FORMAT, self._generation, *loaded[2:7]])
        removed = loaded[7]
        if not isinstance(removed, list) or not all(type(p) is str for p in removed):
            return
        self._changed, self._removed = changed, set(removed)
        for relative in self._removed:
            self._old.pop(relative, None)
        self._old.update(changed)

    @property
    def entries(self) -> dict[str, Entry]:
        """{path: (size, mtime_ns, inode, object id)} as loaded (a walk compares each file's stat with these)."""
        return self._old

    def keep(self, unchanged: dict[str, Entry]) -> None:
        """Keep the entries of the files whose size, mtime and inode still match them."""
        self._fresh.update(unchanged)

    def missed(self, relative: str) -> None:
        """Note that *relative* was found with another stat than its entry's (or has none)."""
        if relative in self._old:
            self._missed.append(relative)

    def record(self, relative: str, size: int, mtime_ns: int, inode: int, object_id: str) -> None:
        """Remember *object_id* for *relative* (unless it was modified too recently to trust)."""
        if mtime_ns < self._racy_after:
            self._fresh[relative] = self._recorded[relative] = (size, mtime_ns, inode, object_id)

    def save(self) -> None:
        """Keep the entries kept or recorded since the cache was loaded, and only those; failures are ignored."""
        removed = {p for p in self._missed if p not in self._recorded}
        looked_up = len(self._fresh) - len(self._recorded) + len(self._missed)
        if looked_up < len(self._old):  # some entries were not looked up: their files are gone
            removed = {p for p in self._old if p not in self._fresh}
        if not self._recorded and not removed and not self._rewrite:
            return
        changed = {p: e for p, e in self._changed.items() if p not in removed} | self._recorded
        gone = (self._removed - self._recorded.keys()) | removed
        try:  # the cache only saves time; a read-only folder still pushes
            self.path.parent.mkdir(exist_ok=True)
            if (
                self._generation is not None
                and not self._rewrite
                and len(changed) + len(gone) <= max(self.CHANGES_MIN, len(self._fresh) // 8)
            ):
                _write_file(self.changes_path, [self.FORMAT, self._generation, *_columns(changed), sorted(gone)])
            else:
                generation = uuid.uuid4().hex
                _write_file(self.path, [self.FORMAT, generation, *_columns(self._fresh)])
                self.changes_path.unlink(missing_ok=True)
                self._generation, self._rewrite = generation, False
        except OSError:
            pass


def _columns(entries: dict[str, Entry]) -> list[list]:
    """Return [paths, sizes, mtimes, inodes, object ids] of *entries*."""
    if not entries:
        return [[], [], [], [], []]
    return [list(entries), *(list(column) for column in zip(*entries.values(), strict=True))]


def _unpack_file(path: Path) -> object:
    try:
        return msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=True)
    except (OSError, ValueError, msgpack.UnpackException):
        return None


def _write_file(path: Path, value: object) -> None:
    """Write *value* (msgpack) to *path* atomically."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_bytes(msgpack.packb(value, use_bin_type=True))
    os.replace(tmp, path)


def _cache_entries(loaded: object) -> tuple[dict[str, Entry], str | None]:
    """Return ({path: (size, mtime_ns, inode, object id)}, generation) of a loaded stat cache ({} when it is
    not one; generation None for the formats older clients wrote).

    Shape only: an id that is not one makes the hub refuse the snapshot, it cannot pass for content.
    """
    if isinstance(loaded, dict):  # written by an older client
        old = loaded.values()
        if all(type(e) is list and len(e) == 4 for e in old) and _id_shaped([e[3] for e in old]):
            return {path: tuple(entry) for path, entry in loaded.items()}, None
        return {}, None
    if isinstance(loaded, list) and len(loaded) == 6 and loaded[0] == 2:  # columns without a generation
        loaded = [StatCache.FORMAT, None, *loaded[1:]]
    if not (isinstance(loaded, list) and len(loaded) == 7 and loaded[0] == StatCache.FORMAT):
        return {}, None
    _, generation, paths, sizes, mtimes, inodes, oids = loaded
    # Only the ids are handed on: a size, mtime or inode of another type never matches a stat, a path that
    # is not a string is never looked up (and so not kept).
    if not all(type(column) is list for column in loaded[2:]) or not _id_shaped(oids):
        return {}, None
    try:
        entries = dict(zip(paths, zip(sizes, mtimes, inodes, oids, strict=True), strict=True))
    except (ValueError, TypeError):  # columns of different lengths, a path that cannot be a key
        return {}, None
    return entries, generation if isinstance(generation, str) else None


def _id_shaped(values: Sequence[object]) -> bool:
    """Return True when every value has the shape of an id (a string of ``sha256:`` + 64 characters' length)."""
    return set(map(type, values)) <= {str} and set(map(len, cast("Sequence[str]", values))) <= {ID_LENGTH}
