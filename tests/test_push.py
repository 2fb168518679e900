"""Push over the mpack protocol (wire.push.wire_push_unpack_mpack) and server-side commits.

Real storage (filesystem and moto S3), real database; storage requests are
observed with ``record_storage_ops`` and queries with ``CaptureQueriesContext``.
"""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from musehub_core.errors import MalformedPack, NonFastForward, PackNotFound
from musehub_core.ids import blob_id, compute_commit_id, compute_snapshot_id, fake_id
from musehub_core.mpack import build_wire_mpack, commit_to_wire, decode_blob, encode_blob, parse_wire_mpack
from repos.manifests import load_manifest
from repos.models import (
    Branch,
    Commit,
    CommitGraph,
    CommitRef,
    MPack,
    MPackIndex,
    Object,
    ObjectRef,
    Repo,
    Snapshot,
    SnapshotRef,
)
from repos.services.commits import commit_files_to_repo
from repos.storage.backend import get_backend, record_storage_ops
from tests.factories import History, build_pack, make_repo, push_history, stage_mpack, timestamp, uid
from wire.fetch import wire_fetch_mpack
from wire.push import create_mpack_upload, wire_push_unpack_mpack

pytestmark = pytest.mark.django_db

COUNTED = (Commit, CommitRef, CommitGraph, Snapshot, SnapshotRef, Object, ObjectRef, MPackIndex, MPack, Branch)


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def head_of(repo, branch: str = "main") -> str | None:
    return Branch.objects.filter(repo=repo, name=branch).values_list("head_commit_id", flat=True).first()


def push_bytes(repo, data: bytes, *, head: str, commits_count: int, blobs_count: int, branch="main", force=False):
    key = stage_mpack(repo, data)
    return wire_push_unpack_mpack(
        repo,
        key,
        "gabriel",
        branch=branch,
        head_commit_id=head,
        commits_count=commits_count,
        blobs_count=blobs_count,
        force=force,
    )


def fetch_pack(result: dict) -> dict:
    return parse_wire_mpack(get_backend().get_mpack(result["mpack_id"]))


def fetched_blobs(result: dict) -> dict[str, bytes]:
    pack = fetch_pack(result)
    blobs = {b["object_id"]: bytes(b["content"]) for b in pack["blobs"]}
    assert len(blobs) == len(pack["blobs"]), "no blob is sent twice"
    for oid, content in blobs.items():
        assert blob_id(content) == oid, "every fetched blob hashes to its id"
    return blobs


def sample_tree(seed: int) -> dict[str, bytes]:
    """A few hundred files: nested text, binary of many sizes, compressible data, empty and unicode names."""
    rnd = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(240):
        files[f"src/pkg{i % 6}/sub{i % 4}/module_{i}.py"] = f"# module {i}\nVALUE = {i}\n".encode() * (1 + i % 5)
    for i in range(40):
        files[f"assets/bin/blob{i}.bin"] = rnd.randbytes(100 + 997 * i)
    for i in range(10):
        files[f"data/zeros{i}.dat"] = bytes(5000 + i)
    files["empty.txt"] = b""
    files["docs/ünïcödé/日本語.md"] = "# こんにちは\n".encode()
    files["music/🎵 score.mid"] = rnd.randbytes(777)
    files["dup/a.txt"] = b"same content"
    files["dup/b.txt"] = b"same content"
    return files


@pytest.fixture
def based_repo():
    """A repository whose main branch already holds one pushed commit."""
    repo = make_repo()
    history = History()
    base = history.commit({"base.txt": b"base " + uid().encode()})
    push_history(repo, history)
    return repo, history, base


# --- round trip ------------------------------------------------------------------------


def test_push_then_fetch_round_trips_every_file(backend):
    repo = make_repo()
    history = History()
    files1 = sample_tree(1)
    c1 = history.commit(files1, message="first")
    files2 = dict(files1)
    for i in range(5):
        files2[f"src/pkg0/sub0/module_{i * 24}.py"] = f"changed {i}".encode()
    files2["new/added.txt"] = b"added"
    files2["new/deeper/also.bin"] = bytes(range(256)) * 40
    del files2["assets/bin/blob3.bin"]
    c2 = history.commit(files2, parents=[c1["commit_id"]], message="second", sem_ver_bump="minor", agent_id="bot-1")
    assert len(files1) >= 250

    first = push_history(repo, history, commits=[c1], blobs={blob_id(c): c for c in files1.values()})
    second = push_history(repo, history, commits=[c2], zstd=True)
    assert first["commits_added"] == 1 and second["commits_added"] == 1
    assert first["blobs_added"] == len({blob_id(c) for c in files1.values()})
    assert second["head_commit_id"] == c2["commit_id"] == head_of(repo)

    result = wire_fetch_mpack(repo, want=[c2["commit_id"]], have=[])
    pack = fetch_pack(result)
    blobs = fetched_blobs(result)
    assert result["commit_count"] == 2
    assert [c["commit_id"] for c in pack["commits"]] == [c1["commit_id"], c2["commit_id"]]
    assert [commit_to_wire(c) for c in pack["commits"]] == [c1, c2], "commits, metadata included, round-trip"
    assert c2["sem_ver_bump"] == "minor" and c2["agent_id"] == "bot-1"
    assert {s["snapshot_id"]: s["manifest"] for s in pack["snapshots"]} == {
        c1["snapshot_id"]: {p: blob_id(c) for p, c in files1.items()},
        c2["snapshot_id"]: {p: blob_id(c) for p, c in files2.items()},
    }
    assert result["blob_count"] == len(blobs) == len({blob_id(c) for c in [*files1.values(), *files2.values()]})
    for files in (files1, files2):
        assert {path: blobs[blob_id(content)] for path, content in files.items()} == files
    assert blobs[blob_id(b"")] == b"", "the empty file is stored and served"

    files3 = dict(files2)
    for path in ("empty.txt", "docs/ünïcödé/日本語.md", "assets/bin/blob7.bin"):
        files3[path] = f"third version of {path}".encode()
    c3 = history.commit(files3, parents=[c2["commit_id"]], message="third")
    changed = {blob_id(files3[p]): files3[p] for p in ("empty.txt", "docs/ünïcödé/日本語.md", "assets/bin/blob7.bin")}
    third = push_history(repo, history, commits=[c3], blobs=changed)
    assert third["commits_added"] == 1 and third["blobs_added"] == 3

    result = wire_fetch_mpack(repo, want=[c3["commit_id"]], have=[c2["commit_id"]])
    assert result["commit_count"] == 1
    assert result["blob_count"] == 3
    assert fetched_blobs(result) == changed
    assert [c["commit_id"] for c in fetch_pack(result)["commits"]] == [c3["commit_id"]]


# --- rejections ----------------------------------------------------------------------------


def assert_rejected(repo, data: bytes, error: type[Exception], *fragments: str, key: str | None = None, **request):
    """Push *data* and assert it raises *error* naming every fragment, with no row written."""
    key = key or stage_mpack(repo, data)
    request = {"branch": "main", "head_commit_id": "", "commits_count": 0, "blobs_count": 0, **request}
    before = row_counts()
    head_before = head_of(repo)
    with pytest.raises(error) as caught:
        wire_push_unpack_mpack(repo, key, "gabriel", **request)
    for fragment in fragments:
        assert fragment in caught.value.message, f"{fragment!r} not in {caught.value.message!r}"
    assert row_counts() == before, "a rejected push writes no rows"
    assert head_of(repo) == head_before
    return caught.value


def child_of(history: History, base: dict, files: dict[str, bytes], **kwargs) -> dict:
    return history.commit(files, parents=[base["commit_id"]], **kwargs)


def pack_of(history: History, commit: dict, blobs: dict[str, bytes] | None = None, **kw) -> bytes:
    snapshots = [s for s in history.snapshots if s["snapshot_id"] == commit["snapshot_id"]]
    return build_pack([commit], snapshots, history.blobs if blobs is None else blobs, **kw)


def counts_for(commit: dict, blobs: dict) -> dict:
    return {"head_commit_id": commit["commit_id"], "commits_count": 1, "blobs_count": len(blobs)}


def test_bytes_that_do_not_hash_to_the_key_are_refused(based_repo):
    repo, history, base = based_repo
    declared = build_pack([], [], {blob_id(b"declared"): b"declared"})
    sent = build_pack([], [], {blob_id(b"sent"): b"sent"})
    create_mpack_upload(repo, mpack_key=blob_id(declared), size=len(declared), user=None)
    upload = repo.uploads.get(mpack_key=blob_id(declared))
    get_backend().put_upload(str(upload.upload_id), sent)
    error = assert_rejected(
        repo, sent, MalformedPack, blob_id(sent), blob_id(declared), key=blob_id(declared), blobs_count=1
    )
    assert "not to the key" in error.message


def test_a_blob_that_does_not_hash_to_its_id_is_refused(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"a.txt": b"honest content"})
    oid = blob_id(b"honest content")
    blobs = {oid: b"tampered content"}
    assert_rejected(
        repo, pack_of(history, commit, blobs), MalformedPack, "does not hash", oid, **counts_for(commit, blobs)
    )


def test_a_snapshot_id_that_does_not_match_its_manifest_is_refused(based_repo):
    repo, history, base = based_repo
    content = b"content"
    manifest = {"a.txt": blob_id(content)}
    wrong = compute_snapshot_id({"b.txt": blob_id(content)})
    snapshot = {"snapshot_id": wrong, "manifest": manifest, "created_at": ""}
    committed_at = timestamp()
    commit = {
        "commit_id": compute_commit_id([base["commit_id"]], wrong, "m", committed_at),
        "parent_ids": [base["commit_id"]],
        "snapshot_id": wrong,
        "branch": "main",
        "message": "m",
        "author": "gabriel",
        "committed_at": committed_at,
    }
    blobs = {blob_id(content): content}
    data = build_pack([commit], [snapshot], blobs)
    assert_rejected(
        repo, data, MalformedPack, "snapshots[0]", wrong, "does not match its manifest", **counts_for(commit, blobs)
    )


def test_a_commit_id_that_does_not_match_its_content_is_refused(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"a.txt": b"x"}, message="the message the id covers")
    forged = {**commit, "message": "a different message"}
    blobs = {blob_id(b"x"): b"x"}
    assert_rejected(
        repo,
        pack_of(history, forged, blobs),
        MalformedPack,
        "commits[0]",
        commit["commit_id"],
        "does not match",
        **counts_for(commit, blobs),
    )


def test_a_commit_whose_parent_is_missing_is_refused(based_repo):
    repo, history, base = based_repo
    ghost = fake_id("a parent nobody pushed")
    commit = history.commit({"a.txt": b"orphan"}, parents=[ghost])
    blobs = {blob_id(b"orphan"): b"orphan"}
    assert_rejected(
        repo, pack_of(history, commit, blobs), MalformedPack, "Missing parent", ghost, **counts_for(commit, blobs)
    )


def test_a_snapshot_naming_a_blob_neither_in_the_pack_nor_the_repo_is_refused(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"kept.txt": b"kept", "absent.txt": b"absent"})
    blobs = {blob_id(b"kept"): b"kept"}
    assert_rejected(
        repo,
        pack_of(history, commit, blobs),
        MalformedPack,
        "Missing blobs",
        blob_id(b"absent"),
        **counts_for(commit, blobs),
    )


def test_a_commit_whose_snapshot_is_neither_in_the_pack_nor_the_repo_is_refused(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"a.txt": b"a"})
    data = build_pack([commit], [], {blob_id(b"a"): b"a"})
    assert_rejected(
        repo, data, MalformedPack, "Missing snapshots", commit["snapshot_id"], **counts_for(commit, {"a": b"a"})
    )


def test_a_commit_whose_timestamp_is_not_iso_8601_is_refused(based_repo):
    repo, history, base = based_repo
    snapshot_id = compute_snapshot_id({})
    commit = {
        "commit_id": compute_commit_id([base["commit_id"]], snapshot_id, "m", "yesterday"),
        "parent_ids": [base["commit_id"]],
        "snapshot_id": snapshot_id,
        "branch": "main",
        "message": "m",
        "author": "gabriel",
        "committed_at": "yesterday",
    }
    data = build_pack([commit], [{"snapshot_id": snapshot_id, "manifest": {}, "created_at": ""}], {})
    assert_rejected(repo, data, MalformedPack, "commits[0].committed_at", "ISO-8601", **counts_for(commit, {}))


def test_a_pack_with_commits_needs_a_head(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"a.txt": b"a"})
    blobs = {blob_id(b"a"): b"a"}
    request = {**counts_for(commit, blobs), "head_commit_id": ""}
    assert_rejected(repo, pack_of(history, commit, blobs), MalformedPack, "head_commit_id is required", **request)


def test_a_blob_held_only_by_another_repo_does_not_count(based_repo):
    repo, history, base = based_repo
    elsewhere = make_repo()
    other = History()
    other.commit({"secret.txt": b"held by another repository"})
    push_history(elsewhere, other)
    commit = child_of(history, base, {"secret.txt": b"held by another repository"})
    assert_rejected(repo, pack_of(history, commit, {}), MalformedPack, "Missing blobs", **counts_for(commit, {}))


@pytest.mark.parametrize("path", ["/abs.txt", "a/../b.txt", "./a.txt", "a//b.txt", "a\0b", "a\\b"])
def test_a_bad_manifest_path_is_refused(based_repo, path):
    repo, history, base = based_repo
    commit = child_of(history, base, {path: b"x"})
    blobs = {blob_id(b"x"): b"x"}
    assert_rejected(
        repo, pack_of(history, commit, blobs), MalformedPack, "manifest path", repr(path), **counts_for(commit, blobs)
    )


@pytest.mark.parametrize(("commits_delta", "blobs_delta"), [(1, 0), (-1, 0), (0, 1), (0, -1)])
def test_declared_counts_that_do_not_match_the_pack_are_refused(based_repo, commits_delta, blobs_delta):
    repo, history, base = based_repo
    commit = child_of(history, base, {"a.txt": b"a", "b.txt": b"b"})
    blobs = {blob_id(b"a"): b"a", blob_id(b"b"): b"b"}
    request = counts_for(commit, blobs)
    request["commits_count"] += commits_delta
    request["blobs_count"] += blobs_delta
    assert_rejected(
        repo, pack_of(history, commit, blobs), MalformedPack, "1 commits and 2 blobs", "declared", **request
    )


def test_a_head_that_is_neither_in_the_pack_nor_the_repo_is_refused(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"a.txt": b"a"})
    blobs = {blob_id(b"a"): b"a"}
    request = {**counts_for(commit, blobs), "head_commit_id": fake_id("elsewhere")}
    assert_rejected(
        repo, pack_of(history, commit, blobs), MalformedPack, "head_commit_id", fake_id("elsewhere"), **request
    )


def test_a_non_fast_forward_push_is_refused_and_force_moves_the_branch(based_repo):
    repo, history, base = based_repo
    stranger = History()
    other = stranger.commit({"other.txt": b"unrelated history"})
    data = pack_of(stranger, other)
    key = stage_mpack(repo, data)
    request = counts_for(other, stranger.blobs)
    error = assert_rejected(repo, data, NonFastForward, "not an ancestor", base["commit_id"], key=key, **request)
    assert error.data["remote_head"] == base["commit_id"]
    assert not repo.uploads.filter(mpack_key=key).exists(), "a refused push leaves no upload slot behind"
    with pytest.raises(PackNotFound):
        wire_push_unpack_mpack(repo, key, "gabriel", branch="main", force=True, **request)

    before = row_counts()
    key = stage_mpack(repo, data)  # uploaded again, as a client retrying with --force does
    result = wire_push_unpack_mpack(repo, key, "gabriel", branch="main", force=True, **request)
    assert result["ok"] is True and result["commits_added"] == 1
    assert head_of(repo) == other["commit_id"]
    assert result["branch_heads"] == {"main": other["commit_id"]}
    after = row_counts()
    assert after["Commit"] == before["Commit"] + 1 and after["Object"] == before["Object"] + 1


def test_a_fast_forward_push_moves_the_branch(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"next.txt": b"next"})
    result = push_history(repo, history, commits=[commit], blobs={blob_id(b"next"): b"next"})
    assert result["commits_added"] == 1
    assert head_of(repo) == commit["commit_id"]


def test_a_pack_uploaded_for_one_repo_cannot_be_pushed_to_another(based_repo):
    repo_a, history, base = based_repo
    repo_b = make_repo()
    commit = child_of(history, base, {"a.txt": b"for repo A"})
    blobs = {blob_id(b"for repo A"): b"for repo A"}
    key = stage_mpack(repo_a, pack_of(history, commit, blobs))
    assert_rejected(repo_b, b"", PackNotFound, key, repo_b.full_name, key=key, **counts_for(commit, blobs))

    push_history(repo_a, history, commits=[commit], blobs=blobs)
    assert_rejected(repo_b, b"", PackNotFound, key, key=key, **counts_for(commit, blobs))


def test_a_key_never_uploaded_is_not_found(based_repo):
    repo, _, _ = based_repo
    assert_rejected(repo, b"", PackNotFound, fake_id("never uploaded"), key=fake_id("never uploaded"))


def test_a_slot_whose_bytes_never_arrived_is_not_found(based_repo):
    repo, _, _ = based_repo
    data = build_pack([], [], {blob_id(b"never sent"): b"never sent"})
    create_mpack_upload(repo, mpack_key=blob_id(data), size=len(data), user=None)
    assert_rejected(repo, b"", PackNotFound, "not in storage", key=blob_id(data), blobs_count=1)


def test_pushing_the_same_pack_twice_is_idempotent(based_repo):
    repo, history, base = based_repo
    commit = child_of(history, base, {"a.txt": b"once", "b.txt": b"twice"})
    blobs = {blob_id(b"once"): b"once", blob_id(b"twice"): b"twice"}
    first = push_history(repo, history, commits=[commit], blobs=blobs)
    counts = row_counts()
    second = push_history(repo, history, commits=[commit], blobs=blobs)
    assert first["commits_added"] == 1 and first["blobs_added"] == 2
    assert second["commits_added"] == 0 and second["blobs_added"] == 0
    assert second["ok"] is True
    assert row_counts() == counts
    assert head_of(repo) == commit["commit_id"]


# --- what a push stores -------------------------------------------------------------------


def test_small_blobs_are_cached_and_every_blob_is_indexed_at_its_bytes(backend, settings):
    settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES = limit = 4096  # the cache is off by default
    rnd = random.Random(7)
    contents = {
        "tiny.txt": b"tiny",
        "empty": b"",
        "at-limit.bin": rnd.randbytes(limit),
        "over-limit.bin": rnd.randbytes(limit + 1),
        "large.bin": rnd.randbytes(50_000),
        "small-compressible.txt": b"la " * 1000,
        "large-compressible.txt": b"do re mi " * 5000,
    }
    assert len(contents["small-compressible.txt"]) <= limit < len(contents["large-compressible.txt"])
    repo = make_repo()
    history = History()
    commit = history.commit(contents)
    entries = []
    for raw in history.blobs.values():
        stored, encoding = encode_blob(raw)
        entries.append({"object_id": blob_id(raw), "content": stored, "encoding": encoding})
    assert {e["encoding"] for e in entries} == {"", "zstd"}
    data = build_wire_mpack({"commits": [commit], "snapshots": history.snapshots, "blobs": entries})
    result = push_bytes(repo, data, head=commit["commit_id"], commits_count=1, blobs_count=len(entries))
    assert result["blobs_added"] == len(contents)

    key = blob_id(data)
    stored_pack = backend.get_mpack(key)
    assert stored_pack == data, "the pack is kept under its content key exactly as uploaded"
    for path, raw in contents.items():
        oid = blob_id(raw)
        row = Object.objects.get(object_id=oid)
        assert row.size_bytes == len(raw)
        assert row.storage_uri == f"mpack://{key}"
        if len(raw) <= limit:
            assert row.content_cache is not None and bytes(row.content_cache) == raw, path
        else:
            assert row.content_cache is None, path
        index = MPackIndex.objects.get(entity_id=oid)
        assert (index.mpack_id, index.entity_type) == (key, "object")
        stored = stored_pack[index.offset : index.offset + index.length]
        assert decode_blob(stored, index.encoding, max_bytes=1 << 20) == raw, path
    assert MPackIndex.objects.filter(mpack_id=key).count() == len(contents)
    pack = MPack.objects.get(mpack_id=key)
    assert (pack.kind, pack.repo_id, pack.size_bytes) == ("push", repo.repo_id, len(data))
    assert (pack.commit_count, pack.snapshot_count, pack.blob_count) == (1, 1, len(contents))
    assert Commit.objects.get(commit_id=commit["commit_id"]).storage_uri is None
    assert Snapshot.objects.get(snapshot_id=commit["snapshot_id"]).storage_uri is None


def _push_and_fetch_queries(n: int) -> tuple[int, int]:
    repo = make_repo()
    history = History()
    tag = uid()
    commit = history.commit({f"dir{i % 10}/file{i}.txt": f"{tag} file {i}".encode() for i in range(n)})
    data = build_pack(history.commits, history.snapshots, history.blobs)
    key = stage_mpack(repo, data)
    with CaptureQueriesContext(connection) as push_queries:
        result = wire_push_unpack_mpack(
            repo,
            key,
            "gabriel",
            branch="main",
            head_commit_id=commit["commit_id"],
            commits_count=1,
            blobs_count=n,
        )
    assert result["blobs_added"] == n
    with CaptureQueriesContext(connection) as fetch_queries:
        fetched = wire_fetch_mpack(repo, want=[commit["commit_id"]], have=[])
    assert fetched["blob_count"] == n
    return len(push_queries), len(fetch_queries)


def test_query_counts_do_not_grow_with_the_number_of_blobs():
    # Both sizes above COPY_MIN_ROWS: PostgreSQL moves either with one COPY per table.
    push_small, fetch_small = _push_and_fetch_queries(1_200)
    push_large, fetch_large = _push_and_fetch_queries(5_000)
    assert push_large == push_small, "a push of 5,000 blobs makes as many queries as one of 1,200"
    assert fetch_large == fetch_small, "a fetch of 5,000 blobs makes as many queries as one of 1,200"
    few_push, few_fetch = _push_and_fetch_queries(10)
    assert few_push <= push_small and few_fetch == fetch_small, "and a push of 10 blobs makes no more"


def test_a_fetch_needing_a_small_part_of_a_big_pack_reads_byte_ranges(backend):
    repo = make_repo()
    history = History()
    rnd = random.Random(200)
    files = {f"samples/{i:03}.bin": rnd.randbytes(20 * 1024) for i in range(200)}
    history.commit(files)
    push_history(repo, history)
    big_pack = MPack.objects.get(repo=repo).mpack_id

    picked = {"first.bin": files["samples/000.bin"], "last.bin": files["samples/199.bin"]}
    slim = history.commit(picked, message="only two samples")
    result = push_history(repo, history, commits=[slim], blobs={}, branch="slim")
    assert result["blobs_added"] == 0
    assert MPack.objects.filter(repo=repo).count() == 2

    with record_storage_ops() as ops:
        fetched = wire_fetch_mpack(repo, want=[slim["commit_id"]], have=[])
    reads = [op for op in ops if op.key == big_pack]
    assert reads and {op.op for op in reads} == {"get_range"}, [op.op for op in reads]
    assert sum(op.nbytes for op in reads) == 2 * 20 * 1024, "only the two blobs' bytes were read"
    assert fetched["blob_count"] == 2
    assert fetched_blobs(fetched) == {blob_id(c): c for c in picked.values()}


# --- concurrency ----------------------------------------------------------------------------


def _push_in_thread(barrier, outcomes: list, i: int, repo_id: str, key: str, request: dict) -> None:
    """Push *key* once both threads are ready; record the result or the exception in ``outcomes[i]``."""
    try:
        repo = Repo.objects.get(repo_id=repo_id)  # each request resolves its repository
        barrier.wait()
        outcomes[i] = wire_push_unpack_mpack(repo, key, "gabriel", branch="main", **request)
    except Exception as exc:  # the outcome is what the test checks
        outcomes[i] = exc
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_pushes_to_one_branch_let_exactly_one_win():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    repo = make_repo()
    history = History()
    base = history.commit({"base.txt": b"base"})
    push_history(repo, history)
    for round_ in range(3):
        children, keys = [], []
        for side in ("left", "right"):
            content = f"{side} {round_} {uid()}".encode()
            child = history.commit({"base.txt": b"base", f"{side}.txt": content}, parents=[base["commit_id"]])
            blobs = {blob_id(content): content}
            children.append((child, blobs))
            keys.append(stage_mpack(repo, pack_of(history, child, blobs)))

        barrier = threading.Barrier(2)
        outcomes: list[object] = [None, None]
        threads = [
            threading.Thread(
                target=_push_in_thread,
                args=(barrier, outcomes, i, repo.repo_id, keys[i], counts_for(*children[i])),
            )
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, dict)]
        losers = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, NonFastForward)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        (winner, winner_blobs), (loser, loser_blobs) = children[winners[0]], children[losers[0]]
        assert head_of(repo) == winner["commit_id"]
        for model, field in ((Commit, "commit_id"), (CommitGraph, "commit_id"), (CommitRef, "commit_id")):
            assert model.objects.filter(**{field: winner["commit_id"]}).exists()
            assert not model.objects.filter(**{field: loser["commit_id"]}).exists()
        assert Snapshot.objects.filter(snapshot_id=winner["snapshot_id"]).exists()
        assert not Snapshot.objects.filter(snapshot_id=loser["snapshot_id"]).exists()
        assert Object.objects.filter(object_id__in=list(winner_blobs)).count() == 1
        assert not Object.objects.filter(object_id__in=list(loser_blobs)).exists()
        assert not MPackIndex.objects.filter(entity_id__in=list(loser_blobs)).exists()
        assert MPack.objects.filter(mpack_id=keys[winners[0]]).exists()
        assert not MPack.objects.filter(mpack_id=keys[losers[0]]).exists()
        base = winner


# --- server-side commits ----------------------------------------------------------------------


def test_commit_files_to_repo_creates_the_branch():
    repo = make_repo()
    assert head_of(repo, "drafts") is None
    commit_id = commit_files_to_repo(
        repo.repo_id, branch="drafts", files={"a.txt": b"alpha", "dir/b.txt": b"beta"}, message="first", author="ana"
    )
    assert head_of(repo, "drafts") == commit_id
    row = Commit.objects.get(commit_id=commit_id)
    assert row.parent_ids == [] and row.message == "first" and row.author == "ana"
    assert commit_id == compute_commit_id([], row.snapshot_id, "first", row.committed_at)
    manifest = load_manifest(row.snapshot_id)
    assert manifest == {"a.txt": blob_id(b"alpha"), "dir/b.txt": blob_id(b"beta")}
    assert row.snapshot_id == compute_snapshot_id(manifest)
    fetched = wire_fetch_mpack(repo, want=[commit_id], have=[])
    assert fetched_blobs(fetched) == {blob_id(b"alpha"): b"alpha", blob_id(b"beta"): b"beta"}


def test_commit_files_to_repo_builds_on_the_branch_head_and_deletes_with_none():
    repo = make_repo()
    first = commit_files_to_repo(
        repo.repo_id, branch="main", files={"a.txt": b"1", "b.txt": b"2"}, message="1", author="x"
    )
    second = commit_files_to_repo(repo.repo_id, branch="main", files={"c.txt": b"3"}, message="2", author="x")
    assert Commit.objects.get(commit_id=second).parent_ids == [first]
    assert CommitGraph.objects.get(commit_id=second).generation == 1
    snapshot = Commit.objects.get(commit_id=second).snapshot_id
    assert load_manifest(snapshot) == {"a.txt": blob_id(b"1"), "b.txt": blob_id(b"2"), "c.txt": blob_id(b"3")}

    third = commit_files_to_repo(repo.repo_id, branch="main", files={"a.txt": None}, message="3", author="x")
    assert Commit.objects.get(commit_id=third).parent_ids == [second]
    snapshot = Commit.objects.get(commit_id=third).snapshot_id
    assert load_manifest(snapshot) == {"b.txt": blob_id(b"2"), "c.txt": blob_id(b"3")}
    assert head_of(repo) == third


def test_commit_files_to_repo_does_not_repack_blobs_the_repo_already_has(backend):
    repo = make_repo()
    commit_files_to_repo(repo.repo_id, branch="main", files={"a.txt": b"known content"}, message="1", author="x")
    packs = MPack.objects.count()
    with record_storage_ops() as ops:
        commit_id = commit_files_to_repo(
            repo.repo_id, branch="main", files={"copy/of/a.txt": b"known content"}, message="2", author="x"
        )
    assert not [op for op in ops if op.op == "put_mpack"], "known content is not written again"
    assert MPack.objects.count() == packs
    manifest = load_manifest(Commit.objects.get(commit_id=commit_id).snapshot_id)
    assert manifest == {"a.txt": blob_id(b"known content"), "copy/of/a.txt": blob_id(b"known content")}

    with record_storage_ops() as ops:
        commit_files_to_repo(repo.repo_id, branch="main", files={"new.txt": b"new content"}, message="3", author="x")
    assert [op.op for op in ops] == ["put_mpack"], "new content goes into one new pack"
    assert MPack.objects.count() == packs + 1


def test_commit_files_to_repo_rejects_a_bad_path_without_writing():
    repo = make_repo()
    before = row_counts()
    with pytest.raises(MalformedPack, match="manifest path"):
        commit_files_to_repo(repo.repo_id, branch="main", files={"../escape": b"x"}, message="m", author="x")
    assert row_counts() == before


def test_a_refused_push_deletes_its_upload_at_once(based_repo, backend):
    repo, history, base = based_repo
    bad = build_pack([], [], {fake_id("lie"): b"content that does not hash to that id"})
    key = stage_mpack(repo, bad)
    upload = repo.uploads.get(mpack_key=key)
    assert backend.open_upload(str(upload.upload_id)) is not None
    with pytest.raises(MalformedPack):
        wire_push_unpack_mpack(repo, key, "gabriel", branch="main", head_commit_id="", commits_count=0, blobs_count=1)
    assert not repo.uploads.filter(mpack_key=key).exists()
    assert backend.open_upload(str(upload.upload_id)) is None, "the staged bytes are gone, not left for gc"


def test_a_push_killed_between_marking_and_moving_its_pack_succeeds_when_retried(based_repo, backend):
    """The slot is marked promoted before the move; a worker dying in between leaves the bytes staged."""
    repo, history, base = based_repo
    commit = child_of(history, base, {"crash.txt": b"survives"})
    data = pack_of(history, commit, {blob_id(b"survives"): b"survives"})
    key = stage_mpack(repo, data)
    repo.uploads.filter(mpack_key=key).update(promoted=True)  # the state such a crash leaves
    result = wire_push_unpack_mpack(repo, key, "gabriel", branch="main", **counts_for(commit, [1]))
    assert result["ok"] and head_of(repo) == commit["commit_id"]
    assert backend.mpack_exists(key) and MPack.objects.filter(mpack_id=key).exists()
