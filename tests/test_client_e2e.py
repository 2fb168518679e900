"""End to end: the reference client against a live hub, on the filesystem and on S3."""

from __future__ import annotations

import contextlib
import io
import os
import socket
from pathlib import Path

import pytest

from musehub_client import cli, operations, worktree
from musehub_client.http import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_SERVER,
    EXIT_USAGE,
    SNAPSHOT_DELTA,
    HubClient,
)
from musehub_client.state import PACKS_DIR, STATE_DIR, State
from musehub_core.mpack import index_mpack
from repos.models import ApiToken, Collaborator, Commit, Repo, Role
from tests.clientkit import run, spy_reads, tree_of
from tests.factories import make_repo, make_user, uid
from tests.httpkit import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def make_tree(root: Path, count: int = 300) -> None:
    for i in range(count):
        path = root / f"dir{i % 7}" / f"sub{i % 3}" / f"file-{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {i}\n" * (i % 50))
    (root / "binary.bin").write_bytes(os.urandom(200_000))
    (root / "empty.txt").write_bytes(b"")
    (root / "ünïcødé ♫.txt").write_text("notes")


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
    before = State.load(one)
    code, _, err = run("push", str(one), url, token=token)
    assert code == EXIT_CONFLICT and "force" in err
    # The refused push left the folder's state as it was.
    after = State.load(one)
    assert (after.head, after.manifest, after.commits) == (before.head, before.manifest, before.commits)
    assert run("push", str(one), url, "--force", token=token)[0] == 0
    assert State.load(one).manifest == worktree.scan_tree(one)
    assert len(list((one / STATE_DIR).glob("manifest-*.msgpack"))) == 1


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


def test_a_change_is_sent_against_the_recorded_head_and_only_a_big_one_asks_the_hub(url, alice, tmp_path):
    """A tracked folder's recorded head tells the client which blobs the hub already has.

    The rest is sent without asking when it fits an inline pack (as git sends
    what the remote head lacks); a bigger change asks filter-objects about it.
    """
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
        small = operations.push(source, token=token)
        assert asked == [] and small.blobs == 1, "one changed blob, sent without a round trip"
        (source / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024))
        (source / "dir0/sub0/file-1.txt").write_text("changed too")
        big = operations.push(source, token=token)
        assert asked == [2] and big.blobs == 2, "over an inline pack's size: only the changed blobs are asked about"
    finally:
        HubClient.filter_objects = original
    clone = tmp_path / "clone"
    assert run("clone", url, str(clone))[0] == 0
    assert tree_of(clone) == tree_of(source)


LONG_AGO = 1_600_000_000  # a modification time the stat cache trusts (not within its last 2 seconds)


def settled_tree(root: Path, count: int = 30) -> None:
    """make_tree, with every file last modified LONG_AGO: the stat cache keeps them all."""
    make_tree(root, count=count)
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (LONG_AGO, LONG_AGO))


def test_unchanged_files_are_not_read_again(tmp_path, monkeypatch):
    """The stat cache: files whose size, mtime and inode did not change keep their object id without a read."""
    root = tmp_path / "tree"
    settled_tree(root)
    first = worktree.scan_tree(root)
    reads = spy_reads(monkeypatch)
    assert worktree.scan_tree(root) == first and reads == []
    (root / "binary.bin").write_bytes(b"new content")
    second = worktree.scan_tree(root)
    assert reads == [root / "binary.bin"], "only the changed (and freshly modified) file is hashed"
    assert second["binary.bin"] == worktree.hash_file(root / "binary.bin") != first["binary.bin"]

    # Same size and mtime, another inode (a file replaced by a rename, as editors save): read again.
    target = root / "dir1/sub1/file-1.txt"
    replacement = root / "replacement.tmp"
    replacement.write_bytes(target.read_bytes().upper())
    os.utime(replacement, (LONG_AGO, LONG_AGO))
    os.replace(replacement, target)
    reads.clear()
    third = worktree.scan_tree(root)
    # binary.bin is read again too: it was modified too recently for its stat to be trusted yet.
    assert sorted(reads) == [root / "binary.bin", target]
    assert third["dir1/sub1/file-1.txt"] != first["dir1/sub1/file-1.txt"]


def test_stat_caches_older_clients_wrote_are_used_then_rewritten_and_a_damaged_one_is_only_slower(
    tmp_path, monkeypatch
):
    import msgpack

    from musehub_client.state import STAT_CACHE_FILE, StatCache

    root = tmp_path / "tree"
    settled_tree(root)
    first = worktree.scan_tree(root)
    cache_file = root / STATE_DIR / STAT_CACHE_FILE
    main = msgpack.unpackb(cache_file.read_bytes(), raw=False)
    assert main[0] == StatCache.FORMAT and isinstance(main[1], str) and sorted(main[2]) == sorted(first)
    columns = main[2:]  # paths, sizes, mtimes, inodes, ids
    reads = spy_reads(monkeypatch)

    # The map of the first clients, {path: [size, mtime_ns, inode, object id]}, and the columns without a
    # generation of the next ones: every read saved, and the cache rewritten the current way.
    older = {path: [size, mtime, inode, oid] for path, size, mtime, inode, oid in zip(*columns, strict=True)}
    for written in (older, [2, *columns]):
        cache_file.write_bytes(msgpack.packb(written, use_bin_type=True))
        reads.clear()
        assert worktree.scan_tree(root) == first and reads == [], "the older cache saves every read"
        assert msgpack.unpackb(cache_file.read_bytes(), raw=False)[0] == StatCache.FORMAT, "and is rewritten"

    # Columns of different lengths, or an id of the wrong shape: every file is read again, the result the same.
    generation = msgpack.unpackb(cache_file.read_bytes(), raw=False)[1]
    for damaged in (
        [StatCache.FORMAT, generation, ["a"], [], [], [], []],
        [StatCache.FORMAT, generation, *columns[:4], ["sha256:short"] * len(columns[0])],
    ):
        cache_file.write_bytes(msgpack.packb(damaged, use_bin_type=True))
        reads.clear()
        assert worktree.scan_tree(root) == first and len(reads) == len(first)


def test_a_few_changed_files_write_only_the_stat_caches_small_changes_file(tmp_path, monkeypatch):
    """Rewriting 25,000 entries took 7 ms of every push: what changed goes beside them until it is an eighth."""
    import msgpack

    from musehub_client.state import STAT_CACHE_FILE, STAT_CHANGES_FILE, StatCache

    root = tmp_path / "tree"
    settled_tree(root, count=40)
    first = worktree.scan_tree(root)
    cache_file, changes_file = root / STATE_DIR / STAT_CACHE_FILE, root / STATE_DIR / STAT_CHANGES_FILE
    main_bytes = cache_file.read_bytes()
    assert not changes_file.exists()

    target = root / "dir1/sub1/file-1.txt"
    target.write_text("edited")
    os.utime(target, (LONG_AGO + 5, LONG_AGO + 5))  # old enough to be trusted
    (root / "dir2/sub2/file-2.txt").unlink()
    second = worktree.scan_tree(root)
    assert second["dir1/sub1/file-1.txt"] == worktree.hash_file(target) and "dir2/sub2/file-2.txt" not in second
    assert len(second) == len(first) - 1
    assert cache_file.read_bytes() == main_bytes, "the main file is not rewritten"
    changes = msgpack.unpackb(changes_file.read_bytes(), raw=False)
    assert changes[0] == StatCache.FORMAT and changes[1] == msgpack.unpackb(main_bytes, raw=False)[1]
    assert changes[2] == ["dir1/sub1/file-1.txt"] and changes[7] == ["dir2/sub2/file-2.txt"]

    reads = spy_reads(monkeypatch)
    assert worktree.scan_tree(root) == second and reads == [], "main file and changes together save every read"

    # A changes file of another generation (the main file was rewritten since) is not applied.
    changes[1] = "another generation"
    changes_file.write_bytes(msgpack.packb(changes, use_bin_type=True))
    assert worktree.scan_tree(root) == second and reads == [root / "dir1/sub1/file-1.txt"]

    # Changes past an eighth of the tree (and past CHANGES_MIN) rewrite the main file and drop the changes.
    monkeypatch.setattr(StatCache, "CHANGES_MIN", 2)
    for path in sorted(root.rglob("*.txt"))[:10]:
        path.write_text(path.read_text() + "more")
        os.utime(path, (LONG_AGO + 9, LONG_AGO + 9))
    third = worktree.scan_tree(root)
    assert cache_file.read_bytes() != main_bytes and not changes_file.exists()
    reads.clear()
    assert worktree.scan_tree(root) == third and reads == []


def test_snapshot_deltas_travel_both_ways(url, alice, tmp_path):
    """docs/wire.md §2.1: the hub lists snapshot-delta; a push sends a delta, a fetch asks for deltas and rebuilds them."""
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


# --- issue 13: the reference client ------------------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch):
    """No token or author from the environment: each test says what it sends."""
    monkeypatch.delenv("MUSEHUB_TOKEN", raising=False)
    monkeypatch.delenv("MUSEHUB_AUTHOR", raising=False)


def hub_head(url: str, token: str, branch: str = "main") -> str | None:
    with HubClient(url, token) as client:
        return client.refs()["branch_heads"].get(branch)


def test_push_in_a_clone_remembers_the_remote(no_env, url, alice, tmp_path, monkeypatch):
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=10)
    assert run("push", str(source), url, token=token)[0] == 0
    clone = tmp_path / "clone"
    assert run("clone", url, str(clone), token=token)[0] == 0

    (clone / "new.txt").write_text("from the clone")
    code, out, err = run("push", str(clone), token=token)  # DIR only
    assert code == 0, err
    assert hub_head(url, token) == operations.load_state(clone)[1].head

    (clone / "new.txt").write_text("again, from inside the folder")
    monkeypatch.chdir(clone)
    code, out, err = run("push", token=token)  # neither DIR nor URL
    assert code == 0, err
    assert hub_head(url, token) == operations.load_state(clone)[1].head

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("a")
    code, _, err = run("push", str(plain), token=token)
    assert code == EXIT_USAGE and "does not track a repository yet: give its URL" in err


def test_symlinks_and_special_files_are_counted_and_named_never_skipped_silently(no_env, url, alice, tmp_path):
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=10)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not in the tree")
    (source / "link-to-file.txt").symlink_to(source / "binary.bin")
    (source / "dir0" / "linked-folder").symlink_to(outside, target_is_directory=True)
    (source / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(source / "dir1" / "pipe")

    code, out, err = run("push", str(source), url, token=token)  # -q: warnings still show
    assert code == 0, err
    assert "warning: not pushed: 3 symlinks, 1 special file" in err
    assert "symlinks are neither followed nor stored" in err
    for name in ("link-to-file.txt", "dir0/linked-folder", "dangling", "dir1/pipe"):
        assert f"  {name}  (" in err, name
    assert "(a folder)" in err and "named pipe" in err
    listed = (source / STATE_DIR / "skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in listed] == [
        "dangling",
        "dir0/linked-folder",
        "dir1/pipe",
        "link-to-file.txt",
    ]

    clone = tmp_path / "clone"
    assert run("clone", url, str(clone), token=token)[0] == 0
    regular = {path: data for path, data in tree_of(source).items() if not (source / path).is_symlink()}
    assert tree_of(clone) == regular
    assert not (clone / "link-to-file.txt").exists() and not (clone / "dir0" / "linked-folder").exists()

    for path in ("link-to-file.txt", "dir0/linked-folder", "dangling", "dir1/pipe"):
        (source / path).unlink()
    (source / "binary.bin").write_bytes(b"changed")
    code, _, err = run("push", str(source), token=token)
    assert code == 0 and "warning" not in err
    assert not (source / STATE_DIR / "skipped.txt").exists(), "the list is of the last push"


def test_many_skipped_entries_are_all_listed_in_the_state_folder(no_env, url, alice, tmp_path):
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=5)
    for i in range(30):
        (source / f"link-{i:02d}").symlink_to(source / "binary.bin")
    code, _, err = run("push", str(source), url, token=token)
    assert code == 0, err
    assert "warning: not pushed: 30 symlinks" in err and "... and 10 more, all listed in" in err
    assert "special files" not in err and "permissions" not in err, "only the reasons of the kinds found"
    assert len((source / STATE_DIR / "skipped.txt").read_text().splitlines()) == 30


def test_pushing_a_folder_onto_another_existing_branch_needs_onto(no_env, url, alice, tmp_path):
    token = token_for(alice)
    one, two = tmp_path / "one", tmp_path / "two"
    make_tree(one, count=5)
    assert run("push", str(one), url, token=token)[0] == 0
    assert run("clone", url, str(two), token=token)[0] == 0
    (two / "dev.txt").write_text("dev work")
    code, _, err = run("push", str(two), "--branch", "dev", token=token)
    assert code == 0, "a branch new on the hub forks from the folder's head"
    dev_head = hub_head(url, token, "dev")
    assert operations.load_state(two)[1].branch == "dev"

    (one / "main.txt").write_text("main work")
    code, _, err = run("push", str(one), "--branch", "dev", token=token)
    assert code == EXIT_USAGE
    assert "tracks branch main, and dev exists" in err and "--onto dev" in err
    assert hub_head(url, token, "dev") == dev_head, "nothing was pushed"

    code, _, err = run("push", str(one), "--onto", "dev", token=token)
    assert code == 0, err
    state = operations.load_state(one)[1]
    assert state.branch == "dev" and hub_head(url, token, "dev") == state.head
    assert Commit.objects.get(commit_id=state.head).parent_ids == [dev_head], "on top of dev's head"

    code, _, err = run("push", str(one), "--onto", "dev", "--branch", "main", token=token)
    assert code == EXIT_USAGE and "different branches" in err


def test_a_first_push_creates_the_repository_private_or_public(no_env, live_server, alice, tmp_path):
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=5)
    private_url = f"{live_server.url}/{alice.username}/secret-{uid()}"
    code, _, err = run("push", str(source), private_url, "--private", token=token)
    assert code == 0, err
    assert Repo.objects.get(owner=alice.username, slug=private_url.rsplit("/", 1)[1]).visibility == "private"
    code, _, err = run("clone", private_url, str(tmp_path / "anon"))
    assert code == EXIT_NOT_FOUND and "if it is private, a token is needed" in err and "MUSEHUB_TOKEN" in err
    code, _, err = run("push", str(source), private_url, "--public", token=token)
    assert code == EXIT_USAGE and "exists already and is private" in err

    public_url = f"{live_server.url}/{alice.username}/open-{uid()}"
    out, err_stream = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err_stream):
        code = cli.main(["push", str(tmp_path / "source"), public_url, "--token", token])
    assert code == 0, err_stream.getvalue()
    assert "created the public repository" in err_stream.getvalue() and "--private" in err_stream.getvalue()
    assert Repo.objects.get(slug=public_url.rsplit("/", 1)[1]).visibility == "public"
    assert run("clone", public_url, str(tmp_path / "anon-public"))[0] == 0


def test_commits_are_authored_as_the_tokens_user_unless_author_says_otherwise(no_env, url, alice, tmp_path):
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=5)
    assert run("push", str(source), url, "-m", "mine", token=token)[0] == 0
    assert Commit.objects.get(message="mine").author == alice.username
    (source / "x.txt").write_text("x")
    assert run("push", str(source), "-m", "theirs", "--author", "Ada Lovelace", token=token)[0] == 0
    assert Commit.objects.get(message="theirs").author == "Ada Lovelace"


def test_messages_say_what_to_do(no_env, live_server, alice, tmp_path):
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=3)

    code, _, err = run("push", str(source), f"{live_server.url}/{alice.username}", token=token)
    assert code == EXIT_USAGE and "names no repository" in err and f"/{alice.username}/REPO" in err

    code, _, err = run("push", str(source), f"{live_server.url}/admin/x", token=token)
    assert code == EXIT_NOT_FOUND and "'admin'" in err and "unreadable" not in err

    bob = make_user(f"bob-{uid()}")
    code, _, err = run("push", str(source), f"{live_server.url}/{bob.username}/x", token=token)
    assert code == EXIT_NOT_FOUND and "only under your own name" in err and f"/{alice.username}/x" in err
    assert not Repo.objects.filter(owner=bob.username).exists()

    code, _, err = run("push", str(source), f"{live_server.url}/{alice.username}/x")
    assert code == EXIT_AUTH and "MUSEHUB_TOKEN" in err and "--token" in err and "musehub_token create" in err

    code, _, err = run("push", str(source), f"{live_server.url}/{alice.username}/x", token="mh_not-a-token")
    assert code == EXIT_AUTH and "refused the token" in err
    # The scan runs while /refs is asked; when both fail the hub's answer is the one reported.
    (source / "bad\\name.txt").write_text("a backslash no manifest path may hold")
    code, _, err = run("push", str(source), f"{live_server.url}/{alice.username}/x", token="mh_not-a-token")
    assert code == EXIT_AUTH and "refused the token" in err
    (source / "bad\\name.txt").unlink()

    code, _, err = run("clone", f"{live_server.url}/{alice.username}/nothing-{uid()}", str(tmp_path / "c"))
    assert code == EXIT_NOT_FOUND and "a token is needed" in err

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    code, _, err = run("clone", f"http://127.0.0.1:{port}/a/b", str(tmp_path / "down"))
    assert code == EXIT_SERVER
    assert f"the hub is not reachable at http://127.0.0.1:{port} (connection refused): is it running" in err
    assert "urllib3" not in err and "object at 0x" not in err


def test_a_first_push_sends_every_blob_without_asking_the_hub(no_env, url, alice, tmp_path, monkeypatch):
    """A repository the push creates holds nothing: no filter-objects round trips (13 of them for 25,000 files)."""
    asked: list[int] = []
    original = HubClient.filter_objects
    monkeypatch.setattr(HubClient, "filter_objects", lambda self, ids: asked.append(1) or original(self, ids))
    token = token_for(alice)
    source = tmp_path / "source"
    make_tree(source, count=40)
    first = operations.push(source, url, token=token)
    assert asked == [] and first.blobs == len(set(worktree.scan_tree(source).values()))
    (source / "dir0/sub0/file-0.txt").write_text("changed")
    second = operations.push(source, url, token=token)
    assert asked == [] and second.blobs == 1, "a small change is sent against the recorded head without asking"
    clone = tmp_path / "clone"
    operations.clone(url, clone, token=token)
    assert tree_of(clone) == tree_of(source)
