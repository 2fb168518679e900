"""Seed BOS: object storage is for blobs only; commits and snapshots live in the database."""

from __future__ import annotations

import pytest

from musehub_core.ids import blob_id, fake_id
from musehub_core.mpack import build_wire_mpack, parse_wire_mpack
from repos.models import Commit, Object, Snapshot
from repos.services.commits import commit_files_to_repo
from repos.storage.backend import record_storage_ops
from tests.factories import make_repo, stage_mpack
from tests.seedkit import give_repo, index_object_in_mpack, make_commit, mpack_of
from wire.fetch import wire_fetch_mpack
from wire.push import wire_push_unpack_mpack

pytestmark = pytest.mark.django_db(transaction=False)


def test_BOS1_commit_storage_uri_is_null_after_push(backend):
    repo = make_repo()
    with record_storage_ops() as ops:
        commit_id = commit_files_to_repo(
            repo.repo_id, branch="main", files={"a.py": b"x=1"}, message="test", author="gabriel"
        )
    row = Commit.objects.get(commit_id=commit_id)
    assert row.storage_uri is None, "commits belong in the database only"
    assert not [op for op in ops if op.op.startswith("put") and op.key == commit_id]
    assert [op.op for op in ops] == ["put_mpack"], "the only write is the blob's mpack"


def test_BOS2_snapshot_storage_uri_is_null_after_push(backend):
    repo = make_repo()
    with record_storage_ops() as ops:
        commit_id = commit_files_to_repo(
            repo.repo_id, branch="main", files={"b.py": b"y=2"}, message="test", author="gabriel"
        )
    snapshot = Snapshot.objects.get(snapshot_id=Commit.objects.get(commit_id=commit_id).snapshot_id)
    assert snapshot.storage_uri is None, "snapshots belong in the database only"
    assert not [op for op in ops if op.key == snapshot.snapshot_id]


def test_BOS3_blob_storage_uri_is_mpack_after_push(backend):
    repo = make_repo()
    content = b"blob content for bos test"
    oid = blob_id(content)
    wire = build_wire_mpack({"blobs": [{"object_id": oid, "content": content}], "commits": [], "snapshots": []})
    key = stage_mpack(repo, wire)
    wire_push_unpack_mpack(repo, key, "gabriel", branch="main", head_commit_id="", commits_count=0, blobs_count=1)
    row = Object.objects.get(object_id=oid)
    assert row.storage_uri == f"mpack://{key}"


def test_BOS4_commits_served_from_db_not_s3(backend):
    repo = make_repo()
    commit = make_commit(repo, manifest={}, seed="bos4")
    with record_storage_ops() as ops:
        result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert not [op for op in ops if op.key == commit.commit_id], "no storage request names the commit"
    assert {op.op for op in ops} <= {"put_mpack"}, "only the fetch pack itself is written"
    pack = parse_wire_mpack(backend.get_mpack(result["mpack_id"]))
    assert [c["commit_id"] for c in pack["commits"]] == [commit.commit_id]
    assert pack["commits"][0]["message"] == "commit bos4"


def test_BOS5_snapshots_served_from_db_not_s3(backend):
    repo = make_repo()
    oid = blob_id(b"x")
    commit = make_commit(repo, manifest={"x.txt": oid}, seed="bos5")
    data = mpack_of({oid: b"x"})
    backend.put_mpack(blob_id(data), data)
    index_object_in_mpack(oid, blob_id(data))
    give_repo(repo, oid)
    with record_storage_ops() as ops:
        result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert not [op for op in ops if op.key in (commit.snapshot_id, fake_id("snap-bos5"))]
    pack = parse_wire_mpack(backend.get_mpack(result["mpack_id"]))
    assert pack["snapshots"] == [{"snapshot_id": commit.snapshot_id, "manifest": {"x.txt": oid}, "created_at": ""}]


def test_BOS6_merge_proposal_commit_storage_uri_is_null(backend):
    from django.db import transaction

    from repos.services.proposals import create_proposal, merge_proposal
    from repos.services.repos import move_branch
    from tests.factories import make_user

    gabriel = make_user("gabriel")
    repo = make_repo(gabriel, "bos-merge")
    feat = make_commit(repo, manifest={}, seed="merge-bos")
    with transaction.atomic():
        move_branch(repo, "feat", feat.commit_id)
    proposal = create_proposal(
        repo.repo_id, title="Merge feat", from_branch="feat", to_branch="main", acting_user=gabriel
    )
    with record_storage_ops() as ops:
        merged = merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=gabriel)
    merge_commit = Commit.objects.get(commit_id=merged.merge_commit_id)
    assert merge_commit.storage_uri is None, "merge results belong in the database only"
    assert ops == [], "merging writes nothing to object storage"

    # A real merge commit: both branches move on, then a second proposal merges them.
    commit_files_to_repo(repo.repo_id, branch="main", files={"m.py": b"m=1"}, message="main", author="gabriel")
    commit_files_to_repo(repo.repo_id, branch="feat", files={"f.py": b"f=1"}, message="feat", author="gabriel")
    second = create_proposal(repo.repo_id, title="Again", from_branch="feat", to_branch="main", acting_user=gabriel)
    with record_storage_ops() as ops:
        merged = merge_proposal(repo.repo_id, second.proposal_id, acting_user=gabriel)
    merge_commit = Commit.objects.get(commit_id=merged.merge_commit_id)
    assert len(merge_commit.parent_ids) == 2
    assert merge_commit.storage_uri is None, "merge commits belong in the database only"
    assert Snapshot.objects.get(snapshot_id=merge_commit.snapshot_id).storage_uri is None
    assert not [op for op in ops if op.key in (merge_commit.commit_id, merge_commit.snapshot_id)]
    assert ops == [], "the merge reuses stored blobs and writes nothing to object storage"
