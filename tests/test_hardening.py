"""Regressions from review: merge-heavy pushes, pack keys as capabilities, hostile commit fields, bounds."""

from __future__ import annotations

import os

import pytest

from musehub_core.errors import PackNotFound
from musehub_core.ids import blob_id
from repos.models import Commit, CommitGraph, MPack, MPackUpload, Repo, StagedObject
from repos.storage.backend import MAX_SPANS, get_backend, record_storage_ops
from repos.storage.reader import plan_blob_reads, read_blobs
from tests.factories import History, build_pack, make_repo, make_user, push_history, stage_mpack, uid
from tests.httpkit import WireCaller, row_counts, token_for
from wire.mwp import commit_to_mwp, mwp_negotiate
from wire.push import create_mpack_upload, wire_push_unpack_mpack

pytestmark = pytest.mark.django_db


def merge_history() -> History:
    """Twice: a feature commit on top of main, merged back into main (parents [main, feature])."""
    history = History()
    main = history.commit({"a": b"0"}, message="root")
    for k in (1, 2):
        feature = history.commit({"a": b"0", f"f{k}": b"x"}, parents=[main["commit_id"]], message=f"feature {k}")
        main = history.commit(
            {"a": b"0", **{f"f{i}": b"x" for i in range(1, k + 1)}},
            parents=[main["commit_id"], feature["commit_id"]],
            message=f"merge {k}",
        )
    return history


def test_merge_histories_push_in_any_commit_order():
    history = merge_history()
    repo = make_repo()
    newest_first = list(reversed(history.commits))
    result = push_history(repo, history, commits=newest_first, head=history.commits[-1]["commit_id"])
    assert result["ok"] and result["branch_heads"]["main"] == history.commits[-1]["commit_id"]
    generation = dict(CommitGraph.objects.values_list("commit_id", "generation"))
    assert [generation[c["commit_id"]] for c in history.commits] == [0, 1, 2, 3, 4]


def test_a_known_pack_key_is_not_a_capability():
    alice = make_user()
    secret = make_repo(alice, visibility="private")
    history = History()
    history.commit({"secret.txt": b"private notes"})
    key = stage_mpack(secret, build_pack(history.commits, history.snapshots, history.blobs))
    wire_push_unpack_mpack(
        secret, key, alice, branch="main", head_commit_id=history.commits[0]["commit_id"],
        commits_count=1, blobs_count=1,
    )  # fmt: skip
    bob = make_user()
    mine = make_repo(bob)
    create_mpack_upload(mine, mpack_key=key, size=10, user=bob)  # a slot, but bob never uploads
    before = row_counts()
    with pytest.raises(PackNotFound):
        wire_push_unpack_mpack(mine, key, bob, branch="main", head_commit_id="", commits_count=1, blobs_count=1)
    assert row_counts() == before


def test_a_retry_after_promotion_reads_the_promoted_pack():
    """A worker killed after moving the pack to its content key, before recording it: the re-push finds it there."""
    repo = make_repo()
    first = History()
    first.commit({"a": b"1"})
    push_history(repo, first)
    other = History()
    other.commit({"a": b"2"})
    data = build_pack(other.commits, other.snapshots, other.blobs)
    key = stage_mpack(repo, data)
    upload = MPackUpload.objects.get(repo=repo, mpack_key=key)
    MPackUpload.objects.filter(pk=upload.pk).update(promoted=True)
    get_backend().promote_upload(str(upload.upload_id), key)  # what the killed worker had done
    assert get_backend().open_upload(str(upload.upload_id)) is None
    args = dict(branch="main", head_commit_id=other.commits[0]["commit_id"], commits_count=1, blobs_count=1)
    assert wire_push_unpack_mpack(repo, key, "gabriel", force=True, **args)["ok"]
    assert MPack.objects.filter(mpack_id=key, repo=repo).exists()


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("extra", b"\x00\x01", "JSON"),
        ("extra", float("nan"), "JSON"),
        ("extra", "nul \x00 inside", "NUL"),
        ("message", "a\x00b", "NUL"),
        ("committed_at", "0001-01-01T00:00:00+01:00", "timestamp"),
        ("committed_at", "9999-12-31T23:59:59-01:00", "timestamp"),
    ],
)
def test_hostile_commit_fields_are_422_not_500(field, value, problem):
    user = make_user(f"h-{uid()}")
    caller = WireCaller(token_for(user))
    history = History()
    commit = history.commit({"a": b"a"})
    commit[field] = value
    data = build_pack(history.commits, history.snapshots, history.blobs)
    path = f"/{user.username}/hostile"
    slot = caller.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert caller.put_url(slot.data["upload_url"], data).status == 200
    before = row_counts()
    reply = caller.post(
        f"{path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": "main", "head_commit_id": commit["commit_id"], "commits_count": 1,
         "blobs_count": 1},
    )  # fmt: skip
    assert reply.status == 422 and problem in reply.data["detail"]
    assert row_counts() == before


def test_stored_metadata_cannot_replace_the_parents_mwp_clients_see():
    history = History()
    root = history.commit({"a": b"1"})
    child = history.commit({"a": b"2"}, parents=[root["commit_id"]], parent_commit_id="f" * 64)
    repo = make_repo()
    push_history(repo, history)
    stored = Commit.objects.get(commit_id=child["commit_id"])
    assert "parent_commit_id" not in stored.metadata
    row = {**{f: getattr(stored, f) for f in ("commit_id", "parent_ids", "snapshot_id", "branch", "message",
                                             "author", "committed_at", "metadata")}}  # fmt: skip
    assert commit_to_mwp(row)["parent_commit_id"] == root["commit_id"][7:]


def test_negotiate_walks_only_from_this_repositorys_commits():
    private = make_repo(visibility="private")
    secret = History()
    secret_root = secret.commit({"s": b"s"})
    push_history(private, secret)
    public = make_repo()
    shared = History()
    shared_root = shared.commit({"p": b"p"})
    push_history(public, shared)
    reply = mwp_negotiate(public, want=[secret_root["commit_id"][7:]], have=[shared_root["commit_id"][7:]])
    assert reply["common_base"] is None and reply["ready"] is False


def test_a_malformed_first_push_does_not_create_the_repo():
    user = make_user(f"m-{uid()}")
    caller = WireCaller(token_for(user), native=False)
    assert caller.post(f"/{user.username}/fresh/presign", {"object_ids": "nope", "direction": "put"}).status == 400
    assert caller.post(f"/{user.username}/fresh/push/objects", {"objects": 5}).status == 400
    assert caller.post(f"/{user.username}/fresh/push", {"bundle": [], "branch": "main"}).status == 422
    assert not Repo.objects.filter(owner=user.username, slug="fresh").exists()


def test_presigned_objects_sent_inline_leave_no_staged_upload():
    user = make_user(f"s-{uid()}")
    caller = WireCaller(token_for(user), native=False)
    content = os.urandom(70_000)
    oid = blob_id(content)
    history = History()
    commit = history.commit({"big.bin": content})
    path = f"/{user.username}/inline"
    assert caller.post(f"{path}/presign", {"object_ids": [oid[7:]], "direction": "put"}).status == 200
    bundle = {
        "commits": [{**commit, "commit_id": commit["commit_id"][7:], "snapshot_id": commit["snapshot_id"][7:]}],
        "snapshots": [{"snapshot_id": commit["snapshot_id"][7:], "manifest": {"big.bin": oid[7:]}}],
        "objects": [{"object_id": oid[7:], "content": content}],
    }
    assert caller.post(f"{path}/push", {"bundle": bundle, "branch": "main", "force": False}).data["ok"] is True
    assert not StagedObject.objects.exists()


def test_many_scattered_ranges_stream_the_pack_once(backend):
    """Past MAX_SPANS separate ranges a pack is read as one stream, not one GET per range."""
    repo = make_repo()
    history = History()
    small = {f"s{i:03}": os.urandom(5000) for i in range(MAX_SPANS + 8)}  # above the content cache size
    tree = {}
    for i, (name, content) in enumerate(small.items()):
        tree[f"big{i:03}"] = os.urandom(300 * 1024)  # keeps the small blobs' ranges far apart
        tree[name] = content
    history.commit(tree)
    push_history(repo, history)
    wanted = [blob_id(v) for v in small.values()]
    with record_storage_ops() as ops:
        got = dict(read_blobs(plan_blob_reads(wanted)))
    assert got == {blob_id(v): v for v in small.values()}
    reads = [op.op for op in ops if op.op in ("open_mpack", "get_range")]
    assert reads == ["open_mpack"]
