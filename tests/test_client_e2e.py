"""End to end: the reference client against a live hub, on the filesystem and on S3."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from musehub_client import cli, operations, worktree
from musehub_client.http import EXIT_AUTH, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE, SNAPSHOT_DELTA, HubClient
from musehub_client.state import PACKS_DIR, STATE_DIR
from musehub_core.mpack import index_mpack
from repos.models import ApiToken, Collaborator, Role
from tests.factories import make_repo, make_user, uid
from tests.httpkit import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def run(*argv: str, token: str | None = None) -> tuple[int, str, str]:
    """Run the client in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    args = [*argv, "-q"]
    if token:
        args += ["--token", token]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


def make_tree(root: Path, count: int = 300) -> None:
    for i in range(count):
        path = root / f"dir{i % 7}" / f"sub{i % 3}" / f"file-{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {i}\n" * (i % 50))
    (root / "binary.bin").write_bytes(os.urandom(200_000))
    (root / "empty.txt").write_bytes(b"")
    (root / "ünïcødé ♫.txt").write_text("notes")


def tree_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".musehub" not in p.relative_to(root).parts
    }


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


@pytest.fixture
def url(live_server, alice):
    return f"{live_server.url}/{alice.username}/songs-{uid()}"


def test_push_clone_incremental_fetch_and_pull(backend, url, alice, tmp_path):
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source)
    code, out, err = run("push", str(source), url, "--message", "first", token=token)
    assert code == 0, err
    clone = tmp_path / "clone"
    code, _, err = run("clone", url, str(clone))
    assert code == 0, err
    assert tree_of(clone) == tree_of(source), "byte-identical trees"

    for name in ("dir0/sub0/file-0.txt", "dir1/sub1/file-1.txt", "binary.bin"):
        (source / name).write_bytes(os.urandom(1000))
    assert run("push", str(source), url, "--message", "second", token=token)[0] == 0
    packs_before = set((clone / ".musehub" / "packs").glob("*.mpack"))
    code, out, err = run("fetch", str(clone))
    assert code == 0, err
    new_packs = set((clone / ".musehub" / "packs").glob("*.mpack")) - packs_before
    assert len(new_packs) == 1
    with open(new_packs.pop(), "rb") as handle:
        contents = index_mpack(handle)
    assert len(contents.blobs) == 3 and len(contents.commits) == 1, "only the 3 changed blobs travel"
    assert run("pull", str(clone))[0] == 0
    assert tree_of(clone) == tree_of(source)


def test_non_fast_forward_push_exits_with_conflict_and_force_wins(url, alice, tmp_path):
    token = token_for(alice)
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "a.txt").parent.mkdir(parents=True)
    (one / "a.txt").write_text("one")
    assert run("push", str(one), url, token=token)[0] == 0
    assert run("clone", url, str(two))[0] == 0
    (two / "b.txt").write_text("two")
    assert run("push", str(two), url, token=token)[0] == 0
    (one / "a.txt").write_text("one again")
    code, _, err = run("push", str(one), url, token=token)
    assert code == EXIT_CONFLICT and "force" in err
    assert run("push", str(one), url, "--force", token=token)[0] == 0


def test_private_repo_permissions_through_the_client(live_server, alice, tmp_path):
    repo = make_repo(alice, f"private-{uid()}", visibility="private")
    url = f"{live_server.url}/{alice.username}/{repo.slug}"
    source = tmp_path / "s"
    source.mkdir()
    (source / "secret.txt").write_text("secret")
    assert run("push", str(source), url, token=token_for(alice))[0] == 0
    assert run("clone", url, str(tmp_path / "anon"))[0] == EXIT_NOT_FOUND
    reader = make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    reader_token = token_for(reader)
    assert run("clone", url, str(tmp_path / "reader"), token=reader_token)[0] == 0
    (tmp_path / "reader" / "secret.txt").write_text("changed")
    code, _, err = run("push", str(tmp_path / "reader"), url, token=reader_token)
    assert code == EXIT_AUTH and "write" in err
    ApiToken.objects.filter(user=reader).update(revoked_at="2026-01-01T00:00:00Z")
    assert run("clone", url, str(tmp_path / "revoked"), token=reader_token)[0] == EXIT_AUTH


def test_usage_errors_exit_2():
    code, _, err = run("clone")
    assert code == EXIT_USAGE and "usage" in err


def test_a_small_change_asks_the_hub_only_about_changed_blobs(url, alice, tmp_path):
    """A tracked folder's recorded head tells the client which blobs the hub already has."""
    token = token_for(alice)
    source = tmp_path / "src"
    make_tree(source, count=50)
    assert run("push", str(source), url, token=token)[0] == 0
    (source / "dir0/sub0/file-0.txt").write_text("changed")
    asked: list[int] = []
    original = HubClient.filter_objects

    def counting(self, object_ids):
        ids = list(object_ids)
        asked.append(len(ids))
        return original(self, ids)

    HubClient.filter_objects = counting
    try:
        assert run("push", str(source), url, token=token)[0] == 0
    finally:
        HubClient.filter_objects = original
    assert asked == [1]
    clone = tmp_path / "clone"
    assert run("clone", url, str(clone))[0] == 0
    assert tree_of(clone) == tree_of(source)


def test_unchanged_files_are_not_read_again(tmp_path, monkeypatch):
    """The stat cache: files whose size, mtime and inode did not change keep their object id without a read."""
    root = tmp_path / "tree"
    make_tree(root, count=30)
    past = 1_600_000_000
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    first = worktree.scan_tree(root)
    reads: list[Path] = []
    original = worktree.hash_file
    monkeypatch.setattr(worktree, "hash_file", lambda path: reads.append(Path(path)) or original(path))
    assert worktree.scan_tree(root) == first and reads == []
    (root / "binary.bin").write_bytes(b"new content")
    second = worktree.scan_tree(root)
    assert reads == [root / "binary.bin"], "only the changed (and freshly modified) file is hashed"
    assert second["binary.bin"] == worktree.hash_file(root / "binary.bin") != first["binary.bin"]

    # Same size and mtime, another inode (a file replaced by a rename, as editors save): read again.
    target = root / "dir1/sub1/file-1.txt"
    replacement = root / "replacement.tmp"
    replacement.write_bytes(target.read_bytes().upper())
    os.utime(replacement, (past, past))
    os.replace(replacement, target)
    reads.clear()
    third = worktree.scan_tree(root)
    # binary.bin is read again too: it was modified too recently for its stat to be trusted yet.
    assert sorted(reads) == [root / "binary.bin", target]
    assert third["dir1/sub1/file-1.txt"] != first["dir1/sub1/file-1.txt"]


def test_snapshot_deltas_travel_both_ways(url, alice, tmp_path):
    """wire.md §2.1: the hub lists snapshot-delta; a push sends a delta, a fetch asks for deltas and rebuilds them."""
    token = token_for(alice)
    source, clone = tmp_path / "source", tmp_path / "clone"
    make_tree(source, count=60)
    first = operations.push(source, url, token=token)
    assert first.pushed and not first.delta, "a root commit has no parent to be a delta against"
    operations.clone(url, clone, token=token)
    (source / "dir0/sub0/file-0.txt").write_text("changed")
    (source / "dir1/sub1/file-1.txt").unlink()
    second = operations.push(source, url, token=token)
    assert second.delta and second.parent == first.head

    fetched = operations.fetch(clone, token=token)
    assert SNAPSHOT_DELTA in fetched.capabilities and fetched.commits == 1
    assert list((clone / STATE_DIR / PACKS_DIR).glob("*.manifests")), "the fetch pack's delta was rebuilt and kept"
    pulled = operations.pull(clone, token=token)
    assert (pulled.written, pulled.deleted) == (1, 1)
    assert tree_of(clone) == tree_of(source)


def test_a_clone_keeps_history_as_deltas_and_rebuilds_any_commit(url, alice, tmp_path):
    from musehub_client.packs import PackStore, read_manifests

    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=60)
    trees = {}
    for n in range(6):
        (source / f"dir0/sub0/file-{n}.txt").write_bytes(f"version {n}".encode())
        assert run("push", str(source), url, "-m", f"c{n}", token=token)[0] == 0
        head = HubClient(url, token).refs()["branch_heads"]["main"]
        trees[head] = tree_of(source)
    clone = tmp_path / "clone"
    assert run("clone", url, str(clone))[0] == 0
    packs = list((clone / STATE_DIR / PACKS_DIR).glob("*.mpack"))
    assert len(packs) == 1
    assert len(read_manifests(packs[0])) == 1, "only the head's manifest is kept whole beside the pack"
    store = PackStore.open(clone)
    for commit_id, files in trees.items():
        manifest = store.manifest_of(commit_id)
        assert manifest is not None and set(manifest) == set(files)
        assert all(store.read(oid) == files[path] for path, oid in manifest.items())
