"""The working-tree walk of a push: the C walk (``musehub_client._scan``) against the Python one.

Both must find the same files, compare them with the stat cache the same way
and report the same entries they cannot store: a cache one wrote is read by
the other, and a user without a C compiler pushes the same snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from musehub_client import worktree
from musehub_client.http import ClientError
from musehub_client.state import STATE_DIR, StatCache

NATIVE_REQUIRED = os.environ.get("MUSEHUB_REQUIRE_NATIVE") == "1"
needs_native = pytest.mark.skipif(
    worktree._native_scan is None and not NATIVE_REQUIRED,
    reason="musehub_client._scan is not built (`make` builds it)",
)


def test_the_c_walk_is_built_where_the_makefile_says_it_must_be():
    """`make test` builds the extension and sets MUSEHUB_REQUIRE_NATIVE: a build that failed must not pass as a skip."""
    if not NATIVE_REQUIRED:
        pytest.skip("MUSEHUB_REQUIRE_NATIVE is not set (run through `make test`)")
    assert worktree._native_scan is not None, "musehub_client._scan did not build: run `make build` and read its output"


def walk(root: Path, known: dict, *, native: bool) -> tuple[worktree.Walk, worktree.Skipped]:
    skipped = worktree.Skipped()
    return worktree.walk_tree(root, skipped, known, native=native), skipped


def both(root: Path, known: dict) -> tuple[worktree.Walk, worktree.Skipped]:
    """Walk *root* both ways; assert they agree and return the C walk's result."""
    native, native_skipped = walk(root, known, native=True)
    python, python_skipped = walk(root, known, native=False)
    assert native.same == python.same
    assert sorted(native.changed) == sorted(python.changed)
    assert native.files == python.files
    assert native_skipped.all() == python_skipped.all()
    return native, native_skipped


def stat_entry(path: Path, oid: str) -> tuple[int, int, int, str]:
    info = path.lstat()
    return (info.st_size, info.st_mtime_ns, info.st_ino, oid)


@needs_native
def test_both_walks_find_the_same_files_and_skip_the_same_entries(tmp_path):
    root = tmp_path / "tree"
    for relative in ("a.txt", "a-b.txt", "a0", "b/c.txt", "b/d/e.txt", "b/.musehub/kept.txt", "é/ü.mid", "empty/.keep"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(relative.encode() * 3)
    (root / "no files here").mkdir()
    (root / STATE_DIR).mkdir()
    (root / STATE_DIR / "state.json").write_text("{}")  # the client's own folder: never part of the tree
    (root / "link.txt").symlink_to(root / "a.txt")
    (root / "b" / "linked-folder").symlink_to(root / "b" / "d", target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "b" / "pipe")
    os.mkfifo(root / "e")  # a special file whose name sorts between folders
    undecodable = os.fsencode(root / "b") + b"/caf\xe9.txt"  # Latin-1 bytes: not UTF-8
    with open(undecodable, "wb") as handle:
        handle.write(b"latin")

    result, skipped = both(root, {})
    assert result.files == 9 and result.same == {}
    assert [row[0] for row in result.changed] == sorted(row[0] for row in result.changed), "in path order"
    assert {row[0] for row in result.changed} == {
        "a.txt", "a-b.txt", "a0", "b/c.txt", "b/d/e.txt", "b/.musehub/kept.txt", "é/ü.mid", "empty/.keep",
        "b/caf\udce9.txt",
    }  # fmt: skip
    for relative, size, mtime_ns, inode in result.changed:
        info = os.lstat(os.path.join(root, relative))
        assert (size, mtime_ns, inode) == (info.st_size, info.st_mtime_ns, info.st_ino)
    assert [path for path, _ in skipped.all()] == ["b/linked-folder", "b/pipe", "dangling", "e", "link.txt"]
    assert dict(skipped.all())["b/pipe"] == "named pipe"
    assert dict(skipped.all())["b/linked-folder"].endswith("(a folder)")


@needs_native
def test_a_file_keeps_its_cache_entry_only_while_size_mtime_and_inode_all_match(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    names = ["same.txt", "grown.txt", "touched.txt", "replaced.txt", "new.txt", "odd-types.txt", "short.txt"]
    for name in names:
        (root / name).write_text("content")
    known = {name: stat_entry(root / name, f"sha256:{i:064x}") for i, name in enumerate(names) if name != "new.txt"}

    def keep_mtime(name: str) -> None:
        os.utime(root / name, ns=(0, known[name][1]))

    (root / "grown.txt").write_text("content, longer")  # only the size differs
    keep_mtime("grown.txt")
    os.utime(root / "touched.txt", ns=(0, known["touched.txt"][1] + 1))  # only the mtime differs
    (root / "replacement").write_text("content")  # only the inode differs: made while the old one exists
    os.replace(root / "replacement", root / "replaced.txt")
    keep_mtime("replaced.txt")
    os.replace(root / "same.txt", root / "moved")  # a rename keeps the inode and the mtime
    os.replace(root / "moved", root / "same.txt")
    size, mtime_ns, inode, oid = known["odd-types.txt"]
    known["odd-types.txt"] = (float(size), mtime_ns, inode, oid)  # a damaged cache: never a match
    known["short.txt"] = known["short.txt"][:3]  # type: ignore[assignment]  # no id: never a match

    native, _ = walk(root, known, native=True)
    assert native.same == {"same.txt": known["same.txt"]}
    assert [row[0] for row in native.changed] == sorted(set(names) - {"same.txt"})
    del known["odd-types.txt"], known["short.txt"]  # the Python walk trusts the loaded cache's shape
    python, _ = walk(root, known, native=False)
    assert python.same == native.same
    assert sorted(row for row in python.changed if row[0] in known) == [r for r in native.changed if r[0] in known]


@needs_native
def test_the_c_walk_lists_files_in_the_order_python_sorts_their_paths(tmp_path):
    """Folders sort as "name/": "a/x" comes after "a-b" and "a.c" and before "a0". The manifest's sort is then short."""
    root = tmp_path / "tree"
    paths = ["a-b", "a.c", "a/x", "a/y/z", "a0", "ab", "b", "z/ß", "z/a", "Z", "_", "~", "a/y-", "a/y.q", "日本/語"]
    for relative in paths:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)
    result, _ = walk(root, {}, native=True)
    listed = [row[0] for row in result.changed]
    assert listed == sorted(paths)
    known = {row[0]: (*row[1:], f"sha256:{'0' * 64}") for row in result.changed}
    again, _ = walk(root, known, native=True)
    assert list(again.same) == sorted(paths) and again.changed == []


@needs_native
def test_a_modification_time_beyond_64_bit_nanoseconds_compares_as_python_computes_it(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    far = root / "far-future.txt"
    far.write_text("x")
    os.utime(far, ns=(0, 10**19 + 7))  # the year 2286: more nanoseconds than an int64 holds
    info = far.lstat()
    if info.st_mtime_ns < 2**63:
        pytest.skip(f"this file system keeps no such time (stored {info.st_mtime_ns})")
    known = {"far-future.txt": (info.st_size, info.st_mtime_ns, info.st_ino, "sha256:" + "1" * 64)}
    result, _ = both(root, known)
    assert result.same == known
    stale = {"far-future.txt": (info.st_size, info.st_mtime_ns + 1, info.st_ino, "sha256:" + "1" * 64)}
    result, _ = both(root, stale)
    assert result.changed == [("far-future.txt", info.st_size, info.st_mtime_ns, info.st_ino)]


@needs_native
def test_a_folder_too_deep_to_open_is_reported_unreadable_by_both_walks(tmp_path):
    """Past PATH_MAX a folder cannot be opened by its path: reported, not dropped (nor a crash)."""
    root = tmp_path / "tree"
    root.mkdir()
    (root / "top.txt").write_text("top")
    name = "d" * 250
    fd = os.open(root, os.O_RDONLY)
    depth = 0
    try:
        while depth * (len(name) + 1) < 4400:  # relative paths past 4,096 bytes, made one folder at a time
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, depth = child, depth + 1
        with open(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as handle:
            handle.write("deep")
    finally:
        os.close(fd)
    native, native_skipped = walk(root, {}, native=True)
    python, python_skipped = walk(root, {}, native=False)
    assert [row[0] for row in native.changed] == ["top.txt"] == [row[0] for row in python.changed]
    for skipped in (native_skipped, python_skipped):
        assert len(skipped.unreadable) == 1
        where, reason = skipped.unreadable[0]
        assert where.startswith(name + "/") and "too long" in reason.lower()


@needs_native
def test_a_tree_that_cannot_be_opened_is_an_error_for_both_walks(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    for native in (True, False):
        for missing in (tmp_path / "gone", tmp_path / "a-file"):
            with pytest.raises(ClientError, match="cannot read"):
                walk(missing, {}, native=native)


def as_nobody(work: Callable[[], object]) -> object:
    """Run *work* in a forked child that runs as the unprivileged user ``nobody``; return its (JSON) result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _walk_as_nobody(root: Path, native: bool) -> dict:
    """Walk *root* as the user ``nobody``; return what it found."""

    def work() -> dict:
        result, skipped = walk(root, {}, native=native)
        return {"files": sorted(row[0] for row in result.changed), "unreadable": sorted(skipped.unreadable)}

    return as_nobody(work)  # type: ignore[return-value]


@needs_native
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="drops root to user nobody (Linux, as root)")
def test_entries_a_user_cannot_read_are_reported_by_both_walks():
    """Root reads everything: the walk runs as ``nobody`` in a child, where permissions hold."""
    root = Path(tempfile.mkdtemp(prefix="musehub-walk-", dir="/tmp"))  # pytest's own folders are root's only
    try:
        root.chmod(0o755)
        (root / "open.txt").write_text("x")
        (root / "closed").mkdir()
        (root / "closed" / "inside.txt").write_text("x")
        (root / "closed").chmod(0)
        (root / "locked").mkdir()
        (root / "locked" / "known.txt").write_text("x")
        (root / "locked").chmod(0o311)  # others may enter it, not list it
        results = [_walk_as_nobody(root, native) for native in (True, False)]
    finally:
        (root / "closed").chmod(0o755)
        (root / "locked").chmod(0o755)
        shutil.rmtree(root)
    assert results[0] == results[1]
    assert results[0]["files"] == ["open.txt"]
    assert [path for path, _ in results[0]["unreadable"]] == ["closed", "locked"]
    assert all("denied" in reason for _, reason in results[0]["unreadable"])


@needs_native
def test_a_scan_with_the_c_walk_records_a_cache_the_python_walk_reuses_and_back(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    for i in range(40):
        (root / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 4}" / f"f{i}.txt").write_text(f"file {i}")
    old = os.stat(root / "d0" / "f0.txt").st_mtime_ns - 10 * 10**9
    for path in root.rglob("*.txt"):
        os.utime(path, ns=(old, old))  # older than the racy window: cached
    first = worktree.scan_folder(root, workers=1)
    assert first.hashed == 40 and len(StatCache(root).entries) == 40
    monkeypatch.setattr(worktree, "_native_scan", None)
    (root / "d1" / "f1.txt").write_text("changed")
    second = worktree.scan_folder(root, workers=1)
    assert second.hashed == 1 and second.manifest["d1/f1.txt"] == worktree.hash_file(root / "d1" / "f1.txt")
    monkeypatch.undo()
    third = worktree.scan_folder(root, workers=1)
    assert third.hashed <= 1 and third.manifest == second.manifest
    assert list(third.manifest) == sorted(third.manifest)


@needs_native
def test_listing_folders_on_many_threads_gives_what_one_thread_gives(tmp_path):
    """Folders are listed by whichever thread takes them; the results are put back in path order."""
    root = tmp_path / "tree"
    for i in range(300):
        folder = root / f"t{i % 7}" / f"m{i % 11}" / ("deep/" * (i % 4)) / f"leaf{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.txt").write_text(str(i))
        (root / f"t{i % 7}" / f"t-file-{i}").write_text(str(i))  # files beside folders, sorting around them
    os.mkfifo(root / "t3" / "pipe")
    known = {"t0/t-file-0": (1, 0, 0, "sha256:" + "0" * 64)}
    one = worktree._native_scan.walk(str(root), STATE_DIR, known, 1)
    assert len(one[0]) == 600 and list(one[0]) == sorted(one[0])
    for threads in (2, 3, 8, 16, 64):
        for _ in range(5):
            assert worktree._native_scan.walk(str(root), STATE_DIR, known, threads) == one


# --- a clone's writes in C (write_files, BatchWriter) ---------------------------------------------------------


@needs_native
def test_the_c_writer_creates_files_new_never_through_a_symlink_and_names_the_one_that_failed(tmp_path):
    root = tmp_path / "clone"
    (root / "sub").mkdir(parents=True)
    worktree._native_scan.write_files(str(root), [("a.txt", b"alpha"), ("sub/é.bin", b"\0" * 70_000), ("e", b"")])
    assert (root / "a.txt").read_bytes() == b"alpha" and (root / "sub" / "é.bin").read_bytes() == b"\0" * 70_000
    assert (root / "e").read_bytes() == b""
    (root / "link").symlink_to(tmp_path / "outside")
    for taken in ("a.txt", "link"):  # an existing file is not overwritten; a symlink is not followed
        with pytest.raises(OSError) as failure:
            worktree._native_scan.write_files(str(root), [("new.txt", b"x" * (taken == "a.txt")), (taken, b"z")])
        assert failure.value.filename == f"{root}/{taken}"
        assert (root / "new.txt").exists(), "the files before the failure stay written"
        (root / "new.txt").unlink()
    assert not (tmp_path / "outside").exists() and (root / "a.txt").read_bytes() == b"alpha"
    with pytest.raises(FileNotFoundError):
        worktree._native_scan.write_files(str(root), [("missing/folder.txt", b"x")])
    with pytest.raises(TypeError):
        worktree._native_scan.write_files(str(root), [("bad.txt", "not bytes")])


@pytest.mark.parametrize("native", [True, False])
def test_a_batch_writer_writes_everything_by_close_raises_a_failed_write_and_can_drop_what_is_left(
    tmp_path, monkeypatch, native
):
    if native and worktree._native_scan is None:
        pytest.skip("musehub_client._scan is not built")
    if not native:
        monkeypatch.setattr(worktree, "_native_scan", None)
    monkeypatch.setattr(worktree.BatchWriter, "FILES", 3)
    root = tmp_path / "clone"
    root.mkdir()
    writer = worktree.BatchWriter(root)
    for i in range(10):
        writer.add(f"f{i}.txt", str(i).encode())
    writer.close()
    assert sorted(p.name for p in root.iterdir()) == sorted(f"f{i}.txt" for i in range(10))

    writer = worktree.BatchWriter(root)
    with pytest.raises(FileExistsError):
        writer.add("f0.txt", b"again")  # exists: the write fails (at once in Python)
        for i in range(10, 20):  # raised at a later add (native: from the thread), or at the latest by close
            writer.add(f"f{i}.txt", b"x")
        writer.close()
    assert (root / "f0.txt").read_bytes() == b"0"

    dropped = worktree.BatchWriter(root)
    dropped.add("never.txt", b"x")
    dropped.close(write=False)
    assert not (root / "never.txt").exists() or not native, "a batch not yet sent is dropped"


def _read_both(root: Path, relatives: list[str]) -> list:
    """Read *relatives* with the C reader and the Python one; assert they agree; return (bytes or errno) each."""
    from musehub_client.files import read_files

    def shown(values: list) -> list:
        return [(value.errno, value.filename) if isinstance(value, OSError) else value for value in values]

    native = shown(read_files(str(root), relatives))
    python = shown(read_files(str(root), relatives, use_native=False))
    assert native == python
    return native


@needs_native
def test_both_readers_read_whole_files_and_refuse_what_is_no_longer_a_regular_file(tmp_path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    contents = {"empty": b"", "a.txt": b"alpha\n", "sub/big.bin": os.urandom(3 * 1024 * 1024 + 7)}
    for relative, content in contents.items():
        (root / relative).write_bytes(content)
    undecodable = os.fsdecode(os.fsencode(str(root / "sub")) + b"/caf\xe9.bin")
    Path(undecodable).write_bytes(b"latin-1 name")
    (root / "link").symlink_to(root / "a.txt")
    os.mkfifo(root / "pipe")
    names = [*contents, os.path.relpath(undecodable, root), "link", "pipe", "sub", "gone"]
    values = _read_both(root, names)
    assert values[:4] == [*contents.values(), b"latin-1 name"]
    import errno

    expected = [errno.ELOOP, errno.EINVAL, errno.EINVAL, errno.ENOENT]  # no symlink followed, no wait on a pipe
    assert values[4:] == [(number, f"{root}/{name}") for number, name in zip(expected, names[4:], strict=True)]


@needs_native
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_c_reader_reads_files_whose_size_says_nothing_until_their_end():
    """/proc files stat as 0 bytes: the reader grows its buffer until end of file, as a file growing would need."""
    from musehub_client.files import native

    status, maps = native.read_files("/proc/self", ["status", "maps"])
    assert status.startswith(b"Name:") and status.endswith(b"\n") and b"\nPid:" in status
    assert len(maps) > 4096 and maps.endswith(b"\n"), "past the first buffer"


@needs_native
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="drops root to user nobody (Linux, as root)")
def test_a_file_a_user_cannot_read_reads_as_permission_denied_with_both_readers():
    from musehub_client.files import read_files

    root = Path(tempfile.mkdtemp(prefix="musehub-read-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / "open.txt").write_text("open")
        (root / "closed.txt").write_text("closed")
        (root / "closed.txt").chmod(0)

        def work() -> list:
            return [
                [value.errno if isinstance(value, OSError) else value.decode() for value in values]
                for values in (read_files(str(root), ["open.txt", "closed.txt"], use_native=n) for n in (True, False))
            ]

        found = as_nobody(work)
    finally:
        shutil.rmtree(root)
    import errno

    assert found == [["open", errno.EACCES], ["open", errno.EACCES]]


def test_a_scan_streams_big_files_and_reads_small_ones_in_batches_to_the_same_ids(tmp_path, monkeypatch):
    from musehub_core.ids import blob_id

    root = tmp_path / "tree"
    root.mkdir()
    big = os.urandom(worktree.READ_WHOLE_MAX_BYTES + 1)
    (root / "big.bin").write_bytes(big)
    (root / "edge.bin").write_bytes(big[:-1])  # exactly the limit: still read whole
    for i in range(50):
        (root / f"small-{i}.txt").write_text(f"small {i}\n")
    streamed: list[str] = []
    original = worktree.hash_file
    monkeypatch.setattr(worktree, "hash_file", lambda path: streamed.append(os.path.basename(path)) or original(path))
    scan = worktree.scan_folder(root, workers=2)
    assert streamed == ["big.bin"]
    assert scan.manifest["big.bin"] == blob_id(big) and scan.manifest["edge.bin"] == blob_id(big[:-1])
    assert all(scan.manifest[f"small-{i}.txt"] == blob_id(f"small {i}\n".encode()) for i in range(50))


# --- paths the C functions refuse as Python does ---------------------------------------------------------------
# (Their out-of-memory paths, such as the walk freeing the folder nodes it made, need a failing malloc: not run here.)


@needs_native
def test_a_path_with_nul_is_refused_by_both_readers_as_os_open_refuses_it(tmp_path):
    """The system reads a path up to its first NUL: "a.txt\\0x" must not read a.txt."""
    from musehub_client.files import read_files

    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.txt").write_text("alpha")
    for use_native in (True, False):
        with pytest.raises(ValueError, match="^embedded null byte$"):
            read_files(str(root), ["a.txt", "a.txt\0.evil"], use_native=use_native)


@needs_native
@pytest.mark.parametrize("native", [True, False])
def test_a_path_with_nul_is_refused_by_both_writers_and_nothing_lands_at_its_prefix(tmp_path, monkeypatch, native):
    root = tmp_path / "clone"
    root.mkdir()
    with pytest.raises(ValueError, match="^embedded null byte$"):
        worktree.write_new_file(root, "new.txt\0x", b"z")  # the Python way
    if native:
        with pytest.raises(ValueError, match="^embedded null byte$"):
            worktree._native_scan.write_files(str(root), [("first.txt", b"1"), ("new.txt\0x", b"z")])
        assert not (root / "first.txt").exists(), "every path is checked before the first write"
    else:
        monkeypatch.setattr(worktree, "_native_scan", None)
    writer = worktree.BatchWriter(root)
    with pytest.raises(ValueError, match="^embedded null byte$"):
        writer.add("new.txt\0x", b"z")
        writer.close()
    writer.close(write=False)
    assert sorted(p.name for p in root.iterdir()) == []


@needs_native
def test_the_c_walk_refuses_a_skipped_name_with_nul():
    with pytest.raises(ValueError, match="^embedded null byte$"):
        worktree._native_scan.walk(".", STATE_DIR + "\0x", {}, 1)


@needs_native
def test_a_cache_entry_whose_comparison_drops_it_from_the_cache_is_still_recorded(tmp_path):
    """The C walk holds the entry it compares: a comparison running Python code may remove it from *known*."""
    root = tmp_path / "tree"
    root.mkdir()
    far = root / "far-future.txt"
    far.write_text("x")
    os.utime(far, ns=(0, 10**19 + 7))  # beyond int64 nanoseconds: the C walk compares through Python
    info = far.lstat()
    if info.st_mtime_ns < 2**63:
        pytest.skip(f"this file system keeps no such time (stored {info.st_mtime_ns})")

    class Forgetting:
        """An mtime that empties the cache it is in when compared, and matches."""

        def __init__(self, known: dict) -> None:
            self.known = known

        def __eq__(self, other: object) -> bool:
            self.known.clear()
            return other == info.st_mtime_ns

        __hash__ = None  # type: ignore[assignment]

    oid = "sha256:" + "1" * 64
    found = {}
    for native in (True, False):
        known: dict = {}
        entry = (info.st_size, Forgetting(known), info.st_ino, oid)
        known["far-future.txt"] = entry
        del entry  # only *known* holds it now
        result, _ = walk(root, known, native=native)
        assert known == {} and list(result.same) == ["far-future.txt"]
        same = result.same["far-future.txt"]
        found[native] = (same[0], same[2], same[3], dict(result.manifest))
    assert found[True] == found[False] == (info.st_size, info.st_ino, oid, {"far-future.txt": oid})
