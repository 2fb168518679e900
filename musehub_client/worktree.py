"""The working tree: scanning and hashing files, safe writes, checkout, and planning a pull.

A manifest is ``{POSIX relative path: object id}``. Only regular files are part
of it: the client's own top-level ``.musehub/`` folder is never scanned, and
symlinks, special files and unreadable files are reported by
:func:`scan_folder` (never dropped silently). Writes go through
:func:`safe_target`, which refuses paths that would land outside the tree.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import os
import shutil
import stat
import unicodedata
import uuid
from collections.abc import Callable, Collection, Container, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from musehub_client.feedback import Feedback
from musehub_client.files import native as _native_scan
from musehub_client.files import read_files
from musehub_client.http import CHUNK, EXIT_CONFLICT, EXIT_ERROR, ClientError, integrity_error
from musehub_client.packs import CLIENT_LIMITS
from musehub_client.state import STATE_DIR, Entry, StatCache
from musehub_client.threads import default_workers, run_batches
from musehub_core.errors import MalformedPack
from musehub_core.formatting import human_bytes
from musehub_core.ids import blob_id
from musehub_core.manifests import all_paths_valid, directories_of
from musehub_core.manifests import validate_path as _validate_manifest_path
from musehub_core.mpack import BlobEntry, PackContents

MAX_FILE_BYTES = CLIENT_LIMITS.max_blob_bytes


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cycle collector for a burst of allocations that makes no cycles (a scan, a manifest).

    Scanning 25,000 files allocates a few hundred thousand objects; each
    thousand starts a collection, and in a process holding much else (a big
    application, the benchmark) the collections took a third of the scan.
    The collector is switched back on (if it was on) when the burst ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def hash_file(path: Path | str) -> str:
    """Return the object id of the file at *path*, read in chunks (unbuffered: a small file costs one open, two reads)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return "sha256:" + digest.hexdigest()


def to_manifest_path(relative: str) -> str:
    """Return *relative* (a path under the tree, '/'-separated) if a manifest can hold it, else raise ClientError."""
    try:
        relative.encode("utf-8")
        return _validate_manifest_path(relative, "the tree")
    except UnicodeEncodeError:
        raise ClientError(f"{relative!r} is not valid UTF-8; rename it to push", EXIT_ERROR) from None
    except MalformedPack as exc:
        raise ClientError(f"cannot push {relative!r}: {exc.message}", EXIT_ERROR) from None


# --- scanning -----------------------------------------------------------------------------

SPECIAL_KINDS = {
    stat.S_IFIFO: "named pipe",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}
PARALLEL_MIN_FILES = 64  # fewer files than this are hashed on the calling thread


@dataclass
class Skipped:
    """What a scan found under the tree and could not store, by reason (manifest paths, with a detail)."""

    symlinks: list[tuple[str, str]] = field(default_factory=list)  # (path, link target)
    special: list[tuple[str, str]] = field(default_factory=list)  # (path, kind: named pipe, socket, device)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, the system's reason)

    def __bool__(self) -> bool:
        return bool(self.symlinks or self.special or self.unreadable)

    def all(self) -> list[tuple[str, str]]:
        """Return every skipped entry as (path, reason), sorted by path."""
        entries = [(p, f"symlink -> {t}") for p, t in self.symlinks]
        entries += [(p, kind) for p, kind in self.special]
        entries += [(p, f"unreadable: {why}") for p, why in self.unreadable]
        return sorted(entries)


@dataclass
class TreeScan:
    """A scanned tree: its manifest, what could not be stored, and how many files were read (not in the cache)."""

    manifest: dict[str, str]
    skipped: Skipped
    hashed: int = 0
    files: int = 0


# Folders are opened once and their entries stat'ed relative to that descriptor (fstatat): the kernel
# walks one name per file instead of the whole path. Where the platform cannot (Windows), full paths.
_STAT_BY_FD = os.scandir in os.supports_fd and os.stat in os.supports_dir_fd
_ROOT_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_FOLDER_FLAGS = _ROOT_FLAGS | getattr(os, "O_NOFOLLOW", 0)


def _listings(root: Path, skipped: Skipped) -> Iterator[tuple[str, str, list[tuple[str, os.stat_result]]]]:
    """Yield (manifest prefix, folder path, [(name, lstat)] of its regular files) for every folder under *root*.

    One ``lstat`` per file (a folder's entry type comes from the listing
    itself); symlinks are never followed, the top-level ``.musehub/`` folder is
    not entered, and everything that is neither a folder nor a regular file is
    recorded in *skipped*.
    """
    folders: list[tuple[str, str]] = [("", os.fspath(root))]
    while folders:
        prefix, folder = folders.pop()
        files: list[tuple[str, os.stat_result]] = []
        try:
            # The folder named may itself be a symlink (followed, as any path the user types); never one below it.
            fd = os.open(folder, _FOLDER_FLAGS if prefix else _ROOT_FLAGS) if _STAT_BY_FD else None
        except OSError as exc:
            if not prefix:  # an unreadable tree must not push as an empty one
                raise ClientError(f"cannot read {folder}: {exc.strerror or exc}", EXIT_ERROR) from None
            skipped.unreadable.append((prefix.rstrip("/"), exc.strerror or str(exc)))
            continue
        try:
            with os.scandir(folder if fd is None else fd) as listing:
                entries = list(listing)
            for entry in entries:
                name = entry.name
                if not prefix and name == STATE_DIR:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append((f"{prefix}{name}/", f"{folder}{os.sep}{name}"))
                        continue
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while scanning
                except OSError as exc:
                    skipped.unreadable.append((prefix + name, exc.strerror or str(exc)))
                    continue
                if stat.S_ISREG(info.st_mode):
                    files.append((name, info))
                elif not stat.S_ISDIR(info.st_mode):  # a folder made since the listing is scanned next time
                    _skip(skipped, prefix + name, f"{folder}{os.sep}{name}", info.st_mode)
        except OSError as exc:
            if not prefix:
                raise ClientError(f"cannot read {folder}: {exc.strerror or exc}", EXIT_ERROR) from None
            skipped.unreadable.append((prefix.rstrip("/"), exc.strerror or str(exc)))
            continue
        finally:
            if fd is not None:
                os.close(fd)
        yield prefix, folder, files


@dataclass
class Walk:
    """The regular files under a tree, compared with the stat cache's entries.

    ``manifest`` maps every file to its cached object id, or to None where it
    must be read; ``same`` maps each file whose size, mtime and inode equal its
    entry to that entry; ``changed`` lists (manifest path, size, mtime_ns,
    inode) of the others. ``ordered`` says the manifest is in path order.
    """

    manifest: dict[str, str | None]
    same: dict[str, Entry]
    changed: list[tuple[str, int, int, int]]
    files: int
    ordered: bool


# Threads the C walk lists folders on: stat calls wait in the kernel, and a few threads share the wait.
WALK_THREADS = max(1, min(4, os.cpu_count() or 1))


def walk_tree(root: Path, skipped: Skipped, known: Mapping[str, Entry], *, native: bool = True) -> Walk:
    """Stat every regular file under *root* once and compare it with *known* (the stat cache's entries).

    Symlinks, special files and unreadable entries go to *skipped*. The C walk
    (:mod:`musehub_client._scan`, built by ``make`` or ``pip install``) lists
    folders on WALK_THREADS threads without the GIL, in a fraction of the
    time; without it, or with *native* False, the same walk runs in Python.
    """
    if not native or _native_scan is None or not isinstance(known, dict):
        return _walk_python(root, skipped, known)
    folder = os.fspath(root)
    try:
        manifest, same, changed, others, unreadable, files = _native_scan.walk(folder, STATE_DIR, known, WALK_THREADS)
    except OSError as exc:
        raise ClientError(f"cannot read {folder}: {exc.strerror or exc}", EXIT_ERROR) from None
    skipped.unreadable.extend(unreadable)
    for relative, mode in others:
        _skip(skipped, relative, f"{folder}{os.sep}{relative}", mode)
    return Walk(manifest, same, changed, files, ordered=True)


def _walk_python(root: Path, skipped: Skipped, known: Mapping[str, Entry]) -> Walk:
    manifest: dict[str, str | None] = {}
    same: dict[str, Entry] = {}
    changed: list[tuple[str, int, int, int]] = []
    files = 0
    for prefix, _folder, listing in _listings(root, skipped):
        files += len(listing)
        for name, info in listing:
            found = prefix + name
            cached = known.get(found)
            if (
                cached is not None
                and cached[0] == info.st_size
                and cached[1] == info.st_mtime_ns
                and cached[2] == info.st_ino
            ):
                same[found] = cached
                manifest[found] = cached[3]
            else:
                changed.append((found, info.st_size, info.st_mtime_ns, info.st_ino))
                manifest[found] = None
    return Walk(manifest, same, changed, files, ordered=False)


def _skip(skipped: Skipped, relative: str, path: str, mode: int) -> None:
    """Record in *skipped* why the entry at *path* (neither a folder nor a regular file) is not stored."""
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        kind = " (a folder)" if os.path.isdir(path) else ""
        skipped.symlinks.append((relative, target + kind))
    else:
        skipped.special.append((relative, SPECIAL_KINDS.get(stat.S_IFMT(mode), "special file")))


# Files up to this size are read whole, a batch in one call; bigger ones are hashed in chunks (bounded memory).
READ_WHOLE_MAX_BYTES = 1024 * 1024


def _hash_batch(
    root: str, infos: Mapping[str, tuple[int, int, int]], batch: list[tuple[str, str]]
) -> list[tuple[str, str | None, str]]:
    """Return (manifest path, object id or None, error) for each (manifest path, file path) of *batch*.

    *infos* holds each file's (size, mtime_ns, inode) from the walk: small files are read in one
    :func:`~musehub_client.files.read_files` call (without the GIL), big ones
    streamed through :func:`hash_file`. A file removed since the walk has no
    id and no error; one that cannot be read, or is no longer a regular file,
    has its reason.
    """
    small = [relative for relative, _path in batch if infos[relative][0] <= READ_WHOLE_MAX_BYTES]
    contents = dict(zip(small, read_files(root, small), strict=True)) if small else {}
    done: list[tuple[str, str | None, str]] = []
    for relative, path in batch:
        content = contents.get(relative)
        try:
            if content is None:
                done.append((relative, hash_file(path), ""))
            elif isinstance(content, OSError):
                raise content
            else:
                done.append((relative, blob_id(content), ""))
        except FileNotFoundError:
            done.append((relative, None, ""))  # removed while scanning
        except OSError as exc:
            done.append((relative, None, exc.strerror or str(exc)))
    return done


def scan_folder(
    root: Path, *, workers: int | None = None, before_reading: Callable[[int], object] | None = None
) -> TreeScan:
    """Scan *root* into a manifest {POSIX relative path: object id}, reporting what it cannot store.

    Only regular files are stored. Symlinks (Muse snapshots exclude them:
    following one could commit files from outside the tree), named pipes,
    sockets, devices and files that cannot be read are listed in
    ``skipped``, never dropped silently. Like git's index,
    ``DIR/.musehub/stat-cache.msgpack`` (:class:`~musehub_client.state.StatCache`)
    remembers each file's size, modification time, inode and object id, so only
    files whose stat changed are read; those are hashed on *workers* threads
    (hashlib releases the GIL). *before_reading* is called with the number of
    files to read once the walk is done and before any is read (a push raises
    there an error the hub already answered). Raises ClientError for a tree
    that cannot be read, a name a manifest cannot hold or a file larger than
    the largest blob.
    """
    with paused_gc():
        return _scan(root, workers, before_reading)


def _scan(root: Path, workers: int | None, before_reading: Callable[[int], object] | None) -> TreeScan:
    cache = StatCache(root)
    skipped = Skipped()
    walked = walk_tree(root, skipped, cache.entries)
    cache.keep(walked.same)
    manifest = walked.manifest  # a file still to read holds None: its place in path order
    misses: list[tuple[str, str, int]] = []
    infos: dict[str, tuple[int, int, int]] = {}
    bad_names: list[str] = []
    folder = os.fspath(root)
    for found, size, mtime_ns, inode in walked.changed:
        cache.missed(found)
        try:
            relative = to_manifest_path(found)
        except ClientError as exc:
            bad_names.append(exc.message)
            continue
        if size > MAX_FILE_BYTES:
            raise ClientError(f"{relative} is larger than {human_bytes(MAX_FILE_BYTES)}, the largest blob a pack holds")
        misses.append((relative, f"{folder}{os.sep}{relative}", size))
        infos[relative] = (size, mtime_ns, inode)
    if bad_names:
        more = f" (and {len(bad_names) - 1} more such names)" if len(bad_names) > 1 else ""
        raise ClientError(bad_names[0] + more, EXIT_ERROR)

    def record(results: list[tuple[str, str | None, str]]) -> None:
        for relative, oid, error in results:
            if oid is not None:
                manifest[relative] = oid
                cache.record(relative, *infos[relative], oid)
            else:
                del manifest[relative]  # removed while scanning, or unreadable
                if error:
                    skipped.unreadable.append((relative, error))

    if before_reading is not None:
        before_reading(len(misses))
    workers = 1 if len(misses) < PARALLEL_MIN_FILES else workers or default_workers()
    hash_batch = functools.partial(_hash_batch, folder, infos)
    for results in run_batches(hash_batch, misses, workers=workers, name="musehub-hash", parallel_min_bytes=0):
        record(results)
    cache.save()
    hashed = cast("dict[str, str]", manifest)  # record() gave every None an id or dropped its path
    files = hashed if walked.ordered else dict(sorted(hashed.items()))
    return TreeScan(manifest=files, skipped=skipped, hashed=len(misses), files=walked.files)


def scan_tree(root: Path) -> dict[str, str]:
    """Return the manifest {POSIX relative path: object id} of the regular files under *root* (see :func:`scan_folder`)."""
    return scan_folder(root).manifest


def local_oid(root: Path, relative: str) -> str | None:
    """Return the object id of the regular file at *relative*, None if nothing is there, "" if something else is."""
    path = root / relative
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(mode):
        return ""
    return hash_file(path)


def is_reserved(relative: str) -> bool:
    """Return True for manifest paths inside the client's own ``.musehub/`` folder (never checked out).

    Compared as file systems that ignore case, Unicode form and trailing dots or
    spaces would see it (macOS, Windows): ``.MuseHub/state.json`` there is the
    client's own state file, and writing it could send the token elsewhere.
    """
    first = relative.split("/", 1)[0]
    return unicodedata.normalize("NFKC", first).casefold().rstrip(". ") == STATE_DIR


def safe_target(root: Path, relative: str) -> Path:
    """Return where manifest path *relative* lives under *root*; refuse paths that escape it.

    Refuses malformed paths, the reserved ``.musehub/`` folder and any path whose
    existing parent is a symlink (writing through it could land outside *root*).
    """
    try:
        _validate_manifest_path(relative, "the snapshot")
    except MalformedPack as exc:
        raise integrity_error(exc.message) from None
    parts = relative.split("/")
    if is_reserved(relative):
        raise ClientError(f"the snapshot holds {relative!r}, inside the client's reserved {STATE_DIR}/ folder")
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ClientError(f"refusing to write {relative!r}: {current} is a symlink", EXIT_CONFLICT)
    return root.joinpath(*parts)


def write_file(root: Path, relative: str, content: bytes) -> None:
    """Write *content* to manifest path *relative* under *root* atomically, creating parent folders."""
    target = safe_target(root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        _remove_empty_folders(target)  # a folder emptied by this update; fails if anything is left in it
    tmp = target.with_name(f".{target.name}.musehub-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(content)
        if target.is_file() and not target.is_symlink():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))  # keep an existing file's mode (e.g. +x)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def prepare_new_tree(root: Path, files: Mapping[str, str]) -> None:
    """Check every path of *files* as :func:`safe_target` does and make its folders under *root* (a new folder)."""
    paths = list(files)
    if not all_paths_valid(paths) or any(is_reserved(top) for top in {p.split("/", 1)[0] for p in paths}):
        for relative in paths:
            _check_new_path(relative)  # names the first path refused
    for folder in directories_of(files):
        os.mkdir(root.joinpath(*folder.split("/")))


def write_new_file(root: Path | str, relative: str, content: bytes) -> None:
    """Create manifest path *relative* (checked by :func:`prepare_new_tree`) holding *content*, in one pass.

    The file is created new (``O_EXCL``, never following a symlink).
    """
    fd = os.open(f"{root}/{relative}", _NEW_FILE, 0o666)
    try:
        written = os.write(fd, content)
        if written < len(content):
            view = memoryview(content)[written:]
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class BatchWriter:
    """Creates new files (as :func:`write_new_file`) in batches on a background thread, without the GIL.

    A clone writes 25,000 small files: opening, writing and closing them was a
    third of its time on the thread that also reads and checks the pack. The C
    writer (:mod:`musehub_client._scan`) writes a batch with the GIL released,
    so the pack goes on being read meanwhile; one batch is in flight at a time,
    so memory stays a few MiB. A write that failed raises from the next
    :meth:`add` or from :meth:`close`. Without the C module, files are written
    on the calling thread (threads handing the GIL back and forth per file
    would cost more than they save).
    """

    FILES = 256
    BYTES = 4 * 1024 * 1024

    def __init__(self, root: Path) -> None:
        self._root = os.fspath(root)
        self._batch: list[tuple[str, bytes]] = []
        self._bytes = 0
        self._in_flight: Future[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        if _native_scan is not None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="musehub-write")

    def add(self, relative: str, content: bytes) -> None:
        if self._pool is None:
            write_new_file(self._root, relative, content)
            return
        self._batch.append((relative, content))
        self._bytes += len(content)
        if len(self._batch) >= self.FILES or self._bytes >= self.BYTES:
            self._send()

    def _send(self) -> None:
        batch, self._batch, self._bytes = self._batch, [], 0
        self._wait()
        if batch and self._pool is not None:
            self._in_flight = self._pool.submit(_native_scan.write_files, self._root, batch)

    def _wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def close(self, *, write: bool = True) -> None:
        """Write what is left (unless *write* is False), wait for the thread and stop it; raise a write's error."""
        try:
            if write:
                self._send()
            else:
                self._batch = []
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


class ArrivingCheckout:
    """Writes a clone's files while its pack arrives (a :class:`~musehub_client.packs.PackSink`).

    Once the pack's history is verified it knows the head's manifest, makes the
    folders, and writes each file as soon as its blob has arrived and hashed to
    its id (in batches, on a :class:`BatchWriter`'s thread): every blob is
    decoded and hashed once, and the disk works while the network does.
    :meth:`finish` writes whatever the pack held before its history (a pack not
    written by MuseHub) from the pack file, and waits for every write.
    """

    def __init__(self, root: Path, head: str, out: Feedback) -> None:
        self.root = root
        self.head = head
        self.out = out
        self.manifest: dict[str, str] | None = None
        self.snapshot_id: str | None = None  # the head's, verified with the pack's history
        self.files: dict[str, str] = {}
        self._pending: dict[str, list[str]] = {}
        self._writer: BatchWriter | None = None

    def history(self, contents: PackContents, manifests: Mapping[str, dict[str, str]]) -> Collection[str]:
        """Make the head's folders; return the ids of the blobs its files need."""
        commit = next((c for c in contents.commits if c["commit_id"] == self.head), None)
        manifest = manifests.get(commit["snapshot_id"]) if commit is not None else None
        if commit is None or manifest is None:
            return ()  # the caller reports a pack without the head's snapshot
        self.manifest, self.snapshot_id = manifest, commit["snapshot_id"]
        self.files = checkout_manifest(manifest, self.out)
        prepare_new_tree(self.root, self.files)
        for relative, oid in self.files.items():
            self._pending.setdefault(oid, []).append(relative)
        self._writer = BatchWriter(self.root)
        return set(self._pending)

    def blob(self, entry: BlobEntry, raw: bytes) -> None:
        paths = self._pending.pop(entry.object_id, ())
        if paths and self._writer is not None:
            for relative in paths:
                self._writer.add(relative, raw)

    def stop(self) -> None:
        """Stop writing: wait for the batch in flight and drop the rest (before a failed clone's files go)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError):  # the error that made the attempt fail is the one to report
                writer.close(write=False)  # nothing may land after the folder is emptied

    def abandon(self) -> None:
        """Undo an attempt that failed: remove everything written (the clone's folder was empty)."""
        self.stop()
        self.manifest, self.snapshot_id, self.files, self._pending = None, None, {}, {}
        with contextlib.suppress(OSError):
            empty_folder(self.root, keep=STATE_DIR)

    def finish(self, read: Callable[[str], bytes], held: Container[str]) -> None:
        """Write the files whose blobs came before the history (read from the pack); refuse blobs it lacks."""
        writer, self._writer = self._writer, None
        try:
            for oid, paths in sorted(self._pending.items(), key=lambda item: item[1][0]):
                if oid not in held:
                    raise integrity_error(f"the pack lacks blob {oid} of {paths[0]}")
                content = read(oid)
                for relative in paths:
                    write_new_file(self.root, relative, content)
            self._pending = {}
        finally:
            if writer is not None:
                writer.close()  # every file is written (or its error raised) before the clone is done


def _check_new_path(relative: str) -> None:
    """Refuse a manifest path that is malformed or inside the reserved ``.musehub/`` folder (as safe_target does)."""
    try:
        _validate_manifest_path(relative, "the snapshot")
    except MalformedPack as exc:
        raise integrity_error(exc.message) from None
    if is_reserved(relative):
        raise ClientError(f"the snapshot holds {relative!r}, inside the client's reserved {STATE_DIR}/ folder")


def _remove_empty_folders(folder: Path) -> None:
    """Remove *folder* and the (empty) folders inside it; raise OSError if any file is left."""
    for dirpath, _dirnames, _filenames in os.walk(folder, topdown=False):
        os.rmdir(dirpath)


def remove_file(root: Path, relative: str) -> None:
    """Delete manifest path *relative* and then any folders it leaves empty (never *root* itself)."""
    target = safe_target(root, relative)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    parent = target.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def remove_tree(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def empty_folder(root: Path, *, keep: str | None = None) -> None:
    """Remove everything inside *root* but its entry named *keep* (a folder that was empty before a failed clone)."""
    for child in root.iterdir():
        if child.name == keep:
            continue
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


def checkout_manifest(manifest: Mapping[str, str], out: Feedback) -> dict[str, str]:
    """Return the entries of *manifest* this client writes to disk, noting reserved ones it skips."""
    kept = {path: oid for path, oid in manifest.items() if not is_reserved(path)}
    for path in sorted(set(manifest) - set(kept)):
        out.note(f"warning: not writing {path!r}: {STATE_DIR}/ is reserved for the client's state")
    return kept


# --- moving the tree from one manifest to another (pull) ------------------------------------


@dataclass
class TreeUpdate:
    """What moving the working tree from one manifest to another does."""

    writes: dict[str, str]  # path → object id to write
    deletes: list[str]
    conflicts: list[str]


def plan_update(root: Path, old: Mapping[str, str], new: Mapping[str, str]) -> TreeUpdate:
    """Plan moving *root* from manifest *old* to *new*, listing local changes that would be lost."""
    update = TreeUpdate(writes={}, deletes=[], conflicts=[])
    old = {p: o for p, o in old.items() if not is_reserved(p)}
    new = {p: o for p, o in new.items() if not is_reserved(p)}
    for relative in sorted(set(old) - set(new)):
        current = local_oid(root, relative)
        if current is None:
            continue
        if current == old[relative]:
            update.deletes.append(relative)
        else:
            update.conflicts.append(f"{relative} (modified here, deleted upstream)")
    deleting = set(update.deletes)
    for relative, oid in sorted(new.items()):
        if old.get(relative) == oid:
            continue
        blocker = _blocking_parent(root, relative, deleting)
        if blocker:
            update.conflicts.append(f"{relative} ({blocker} is in the way)")
            continue
        current = local_oid(root, relative)
        if current == oid:
            continue
        if current == "" and _emptied_folder(root, relative, deleting):
            current = None
        if current is None or (relative in old and current == old[relative]):
            update.writes[relative] = oid
        elif relative in old:
            update.conflicts.append(f"{relative} (modified here and upstream)")
        else:
            update.conflicts.append(f"{relative} (untracked here, added upstream)")
    return update


def _emptied_folder(root: Path, relative: str, deleting: set[str]) -> bool:
    """Return True when *relative* is a real folder holding only files this update deletes (and folders)."""
    folder = root / relative
    if folder.is_symlink() or not folder.is_dir():
        return False
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if any((here / d).is_symlink() for d in dirnames):
            return False
        for name in filenames:
            if (here / name).relative_to(root).as_posix() not in deleting:
                return False
    return True


def _blocking_parent(root: Path, relative: str, deleting: set[str]) -> str | None:
    """Return a parent of *relative* that exists and is not a folder (and is not about to be deleted)."""
    parts = relative.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        path = root / prefix
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            if prefix in deleting and not path.is_symlink():
                return None
            return prefix
        if not path.exists():
            return None
    return None
