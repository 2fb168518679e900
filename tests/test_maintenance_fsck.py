"""musehub_fsck: a healthy hub passes; each corruption that can be injected is caught and named.

Every test runs on the filesystem store and on S3 (moto). Corruptions are
injected straight into storage or the database, as a failing disk or a bad
manual edit would leave them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from musehub_core.ids import blob_id, compute_branch_id, fake_id
from repos.models import Branch, MPack, MPackIndex, MPackKind, Object, Snapshot
from repos.services.commits import commit_files_to_repo
from repos.storage.backend import record_storage_ops
from tests.factories import History, build_pack, make_repo, push_history
from tests.maintkit import codes, fetch_all, fsck_failure, random_blob, run, run_json
from tests.seedkit import make_commit

pytestmark = pytest.mark.django_db


@dataclass
class Hub:
    repo: object
    history: History
    big_oid: str  # too big for content_cache: only its pack serves it
    big_pack: str
    small_oid: str  # cached


@pytest.fixture
def hub(backend) -> Hub:
    """One repository with a pushed history (raw and zstd blobs), a server-side commit and a past fetch."""
    repo = make_repo()
    history = History()
    big = random_blob(10_000)
    first = history.commit({"big.bin": big, "small.txt": b"small text"})
    push_history(repo, history, commits=[first])
    second = history.commit({"big.bin": big, "notes.txt": b"n" * 2000}, parents=[first["commit_id"]])
    push_history(repo, history, commits=[second], blobs={blob_id(b"n" * 2000): b"n" * 2000}, zstd=True)
    commit_files_to_repo(repo.repo_id, branch="main", files={"server.txt": b"from the hub"}, message="m", author="a")
    fetch_all(repo)
    big_oid = blob_id(big)
    big_pack = MPackIndex.objects.get(entity_id=big_oid).mpack_id
    return Hub(repo=repo, history=history, big_oid=big_oid, big_pack=big_pack, small_oid=blob_id(b"small text"))


def test_fsck_passes_on_a_healthy_hub_reading_each_pack_once(hub):
    with record_storage_ops() as ops:
        report = run_json("musehub_fsck")
    assert report["ok"] is True
    assert report["errors"] == 0
    assert report["problems"] == []
    packs = set(MPack.objects.values_list("mpack_id", flat=True))
    assert report["checked"]["mpacks"] == len(packs) == 4  # two pushes, one server commit, one fetch
    reads = [op.key for op in ops if op.op in ("open_mpack", "get_mpack", "get_range")]
    assert sorted(reads) == sorted(packs), "each pack is streamed exactly once"
    text = run("musehub_fsck")
    assert "0 error(s), 0 warning(s)" in text


def test_fsck_restricted_to_a_repo_checks_only_its_rows(hub):
    other = make_repo()
    make_commit(other, manifest={"lost.txt": fake_id("lost")}, seed="other-repo")
    report = run_json("musehub_fsck", "--repo", hub.repo.full_name)
    assert report["ok"] is True and report["scope"] == hub.repo.full_name
    assert report["checked"]["commits"] == 3
    _, _, broken = fsck_failure("--repo", other.full_name)
    assert fake_id("lost") in codes(broken)["object-not-indexed"]


def test_fsck_catches_a_pack_whose_bytes_were_replaced(hub, backend):
    backend.put_mpack(hub.big_pack, build_pack(blobs={blob_id(b"impostor"): b"impostor"}))
    error, text, report = fsck_failure()
    assert error.returncode == 1
    assert hub.big_pack in codes(report)["pack-digest"]
    assert f"pack-digest {hub.big_pack}" in text
    assert hub.big_oid in codes(report)["object-unreadable"], "no other source holds the big blob"


def test_fsck_catches_a_damaged_blob_inside_a_pack(hub, backend):
    data = bytearray(backend.get_mpack(hub.big_pack))
    offset, length = MPackIndex.objects.filter(entity_id=hub.big_oid).values_list("offset", "length").get()
    data[offset + length // 2] ^= 0xFF
    backend.put_mpack(hub.big_pack, bytes(data))
    _, text, report = fsck_failure()
    found = codes(report)
    assert hub.big_pack in found["pack-damaged"]
    assert found["blob-damaged"] == {hub.big_oid}, "only the hurt blob is named"
    assert hub.big_oid in found["object-unreadable"]
    assert hub.small_oid not in found.get("object-unreadable", set())
    assert f"blob-damaged {hub.big_oid}" in text


def test_fsck_catches_a_deleted_pack(hub, backend):
    backend.delete_mpack(hub.big_pack)
    _, text, report = fsck_failure()
    found = codes(report)
    assert found["pack-missing"] == {hub.big_pack}
    assert hub.big_oid in found["object-unreadable"]
    assert f"pack-missing {hub.big_pack}" in text


def test_fsck_catches_an_index_entry_outside_its_pack(hub):
    MPackIndex.objects.filter(entity_id=hub.big_oid).update(offset=10**9)
    _, text, report = fsck_failure()
    assert codes(report)["index-mismatch"] == {hub.big_oid}
    assert "outside the pack" in text and hub.big_oid in text


def test_fsck_catches_an_index_entry_pointing_at_other_bytes(hub):
    other = MPackIndex.objects.filter(mpack_id=hub.big_pack).exclude(entity_id=hub.big_oid).first()
    MPackIndex.objects.filter(entity_id=hub.big_oid).update(offset=other.offset, length=other.length)
    _, _, report = fsck_failure()
    assert codes(report)["index-mismatch"] == {hub.big_oid}
    assert hub.big_oid in codes(report)["object-unreadable"]


def test_fsck_catches_a_snapshot_naming_an_object_with_no_index_and_no_cache(hub):
    ghost = fake_id("ghost blob")
    make_commit(hub.repo, manifest={"ghost.txt": ghost}, seed="ghost")
    _, text, report = fsck_failure()
    assert codes(report)["object-not-indexed"] == {ghost}
    assert f"object-not-indexed {ghost}" in text


def test_fsck_catches_a_commit_whose_parent_is_missing(hub):
    parent = fake_id("missing parent")
    commit = make_commit(hub.repo, manifest={}, seed="orphan", parent_ids=[parent], generation=1)
    _, text, report = fsck_failure()
    assert codes(report)["commit-parent-missing"] == {commit.commit_id}
    assert parent in text


def test_fsck_catches_a_commit_whose_snapshot_is_missing(hub):
    commit = make_commit(hub.repo, manifest={"a.txt": hub.small_oid}, seed="snapless")
    Snapshot.objects.filter(snapshot_id=commit.snapshot_id).delete()
    _, text, report = fsck_failure()
    assert codes(report)["commit-snapshot-missing"] == {commit.commit_id}
    assert commit.snapshot_id in text


def test_fsck_catches_a_branch_head_pointing_at_a_missing_commit(hub):
    missing = fake_id("missing head")
    Branch.objects.create(
        branch_id=compute_branch_id(hub.repo.repo_id, "ghost"), repo=hub.repo, name="ghost", head_commit_id=missing
    )
    _, text, report = fsck_failure()
    assert codes(report)["branch-head-missing"] == {missing}
    assert "'ghost'" in text


def test_fsck_catches_a_content_cache_that_does_not_match_its_id(hub):
    Object.objects.filter(object_id=hub.small_oid).update(content_cache=b"not the small text")
    _, text, report = fsck_failure()
    assert codes(report)["cache-mismatch"] == {hub.small_oid}
    assert f"cache-mismatch {hub.small_oid}" in text


def test_fsck_only_warns_about_an_orphan_pack_and_a_missing_fetch_pack(hub, backend):
    orphan = build_pack(blobs={blob_id(b"left by a failed push"): b"left by a failed push"})
    backend.put_mpack(blob_id(orphan), orphan)
    fetch_pack = MPack.objects.get(kind=MPackKind.FETCH).mpack_id
    backend.delete_mpack(fetch_pack)
    report = run_json("musehub_fsck")
    assert report["ok"] is True and report["warnings"] == 2
    assert codes(report) == {"orphan-pack": {blob_id(orphan)}, "fetch-pack-missing": {fetch_pack}}


def test_fsck_warns_about_a_dangling_index_entry_when_the_object_is_still_served(hub):
    MPackIndex.objects.create(entity_id=hub.small_oid, mpack_id=fake_id("gone pack"), entity_type="object")
    report = run_json("musehub_fsck")
    assert report["ok"] is True
    assert codes(report) == {"index-dangling": {hub.small_oid}}


# --- spreading a whole-hub check over time (issue 16) ---------------------------------------------


def test_fsck_since_checks_only_what_was_written_since(hub, backend):
    from django.utils import timezone

    make_commit(hub.repo, manifest={"old.txt": fake_id("lost before")}, seed="before")
    cut = timezone.now()
    commit_files_to_repo(hub.repo.repo_id, branch="main", files={"late.txt": b"late"}, message="l", author="a")
    make_commit(hub.repo, manifest={"new.txt": fake_id("lost after")}, seed="after")
    _, _, report = fsck_failure("--since", cut.isoformat())
    assert report["scope"].startswith("written since")
    new_packs = set(MPack.objects.filter(created_at__gte=cut).values_list("mpack_id", flat=True))
    assert report["checked"]["mpacks"] == len(new_packs) == 1, "only the pack written since is read"
    assert report["checked"]["commits"] == 2 and report["checked"]["snapshots"] == 2
    lost = codes(report)["object-not-indexed"]
    assert fake_id("lost after") in lost and fake_id("lost before") not in lost
    _, _, everything = fsck_failure("--since", "1h")
    assert everything["checked"]["mpacks"] == MPack.objects.count()
    assert fake_id("lost before") in codes(everything)["object-not-indexed"]


def test_fsck_since_takes_a_date_or_a_duration(db):
    error, _ = run_failing_fsck("--since", "yesterday")
    assert "--since takes a date-time" in str(error)


def run_failing_fsck(*args):
    from tests.maintkit import run_failing

    return run_failing("musehub_fsck", *args)


def test_fsck_batches_cover_every_repository_and_resume_from_a_state_file(hub, tmp_path):
    others = [make_repo() for _ in range(3)]
    for n, repo in enumerate(others):
        commit_files_to_repo(repo.repo_id, branch="main", files={"f.txt": f"{n}".encode()}, message="m", author="a")
    everyone = sorted(r.full_name for r in [hub.repo, *others])
    state = tmp_path / "fsck.json"
    seen: list[str] = []
    first = run_json("musehub_fsck", "--batch", "3", "--state", str(state))
    seen += first["repositories"]
    assert first["repositories"] == everyone[:3] and first["next_after"] == everyone[2]
    second = run_json("musehub_fsck", "--batch", "3", "--state", str(state))
    seen += second["repositories"]
    assert second["repositories"] == everyone[3:] and second["next_after"] is None
    assert second["since"] is not None, "the second run also checks what was written since the first"
    assert sorted(seen) == everyone
    third = run_json("musehub_fsck", "--batch", "3", "--state", str(state))
    assert third["repositories"] == everyone[:3], "the cursor wraps around"
    assert run_json("musehub_fsck", "--batch", "2", "--after", everyone[0])["repositories"] == everyone[1:3]


def test_a_batch_reports_a_repository_whose_snapshot_names_an_object_it_has_no_ref_to(hub):
    from repos.models import ObjectRef

    ObjectRef.objects.filter(repo=hub.repo, object_id=hub.big_oid).delete()
    _, _, broken = fsck_failure("--batch", "10")
    assert hub.big_oid in codes(broken)["object-ref-missing"]
