"""musehub_gc: deletes what no repository needs, keeps what any does, and honours the grace period."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from musehub_core.ids import blob_id, fake_id
from repos.models import (
    Commit,
    CommitGraph,
    MPack,
    MPackIndex,
    MPackKind,
    MPackUpload,
    Object,
    ObjectRef,
    Snapshot,
)
from tests.factories import History, build_pack, make_repo, push_history, stage_mpack
from tests.maintkit import codes, fetch_all, fsck_failure, random_blob, run, run_json
from tests.seedkit import make_commit, now

pytestmark = pytest.mark.django_db

SHARED = b"a file both repositories hold" * 20


@dataclass
class Scene:
    kept: object
    kept_blobs: dict[str, bytes]
    kept_packs: set[str]
    doomed_commits: set[str]
    doomed_objects: set[str]
    doomed_pack: str
    fetch_pack: str
    orphan: str


def counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in (Commit, CommitGraph, Snapshot, Object, MPackIndex, MPack)}


@pytest.fixture
def scene(backend) -> Scene:
    """A repository to keep, one deleted (sharing a blob with the first), a past fetch and an orphan pack."""
    kept = make_repo()
    history = History()
    history.commit({"shared.txt": SHARED, "big.bin": random_blob(6000)})
    push_history(kept, history)
    kept_packs = set(MPack.objects.filter(repo=kept).values_list("mpack_id", flat=True))

    doomed = make_repo()
    other = History()
    other.commit({"shared.txt": SHARED, "own.txt": b"only the deleted repo had this"})
    push_history(doomed, other)
    doomed_pack = MPack.objects.get(repo=doomed).mpack_id
    _, fetched = fetch_all(doomed)
    fetch_pack = MPack.objects.get(kind=MPackKind.FETCH).mpack_id
    doomed.delete()

    orphan = build_pack(blobs={blob_id(b"failed push"): b"failed push"})
    backend.put_mpack(blob_id(orphan), orphan)
    return Scene(
        kept=kept,
        kept_blobs=dict(history.blobs),
        kept_packs=kept_packs,
        doomed_commits={c["commit_id"] for c in other.commits},
        doomed_objects={blob_id(b"only the deleted repo had this")},
        doomed_pack=doomed_pack,
        fetch_pack=fetch_pack,
        orphan=blob_id(orphan),
    )


def test_gc_deletes_what_a_deleted_repo_left_and_keeps_what_others_need(scene, backend):
    report = run_json("musehub_gc", "--grace", "0")
    deleted = report["deleted"]
    assert deleted["commits"] == deleted["graph_rows"] == deleted["snapshots"] == 1
    assert deleted["objects"] == 1
    assert {p["mpack_id"] for p in report["mpacks"]} == {scene.doomed_pack, scene.fetch_pack}
    assert report["orphan_mpacks"] == [scene.orphan]

    assert not Commit.objects.filter(commit_id__in=scene.doomed_commits).exists()
    assert not CommitGraph.objects.filter(commit_id__in=scene.doomed_commits).exists()
    assert not Object.objects.filter(object_id__in=scene.doomed_objects).exists()
    assert Object.objects.filter(object_id=blob_id(SHARED)).exists(), "the kept repository still sees it"
    assert not MPackIndex.objects.filter(mpack_id=scene.doomed_pack).exists()
    for gone in (scene.doomed_pack, scene.fetch_pack, scene.orphan):
        assert not backend.mpack_exists(gone)
    assert set(MPack.objects.values_list("mpack_id", flat=True)) == scene.kept_packs
    assert all(backend.mpack_exists(p) for p in scene.kept_packs)

    _, blobs = fetch_all(scene.kept)
    assert blobs == scene.kept_blobs
    assert run_json("musehub_fsck")["ok"] is True


def test_gc_leaves_everything_younger_than_the_grace_period(scene, backend):
    before = counts()
    report = run_json("musehub_gc")  # default grace: 24 hours
    assert report["grace_hours"] == 24
    assert report["mpacks"] == [] and report["orphan_mpacks"] == []
    assert report["deleted"]["objects"] == 0
    assert counts()["MPack"] == before["MPack"]
    assert counts()["Object"] == before["Object"]
    assert backend.mpack_exists(scene.orphan) and backend.mpack_exists(scene.fetch_pack)
    # Ref-less commits are never a write in progress (rows and refs commit together): no grace for them.
    assert report["deleted"]["commits"] == 1


def test_gc_dry_run_reports_and_changes_nothing(scene, backend):
    before = counts()
    report = run_json("musehub_gc", "--dry-run", "--grace", "0")
    assert report["dry_run"] is True
    assert report["deleted"]["commits"] == 1 and report["deleted"]["objects"] == 1
    assert {p["mpack_id"] for p in report["mpacks"]} == {scene.doomed_pack, scene.fetch_pack}
    assert report["orphan_mpacks"] == [scene.orphan]
    assert counts() == before
    assert backend.mpack_exists(scene.orphan) and backend.mpack_exists(scene.doomed_pack)
    text = run("musehub_gc", "--dry-run", "--grace", "0")
    assert "Would delete 1 commit(s)" in text and scene.orphan in text
    assert counts() == before


def test_gc_full_mark_never_deletes_an_object_a_visible_snapshot_names(backend):
    """Data from before every snapshot's objects had refs: --full-mark decodes every manifest to keep them."""
    repo = make_repo()
    raw = b"named but never given a ref"
    oid = blob_id(raw)
    Object.objects.create(object_id=oid, size_bytes=len(raw), storage_uri="mpack://x", content_cache=raw)
    make_commit(repo, manifest={"a.txt": oid}, seed="named")
    loose = fake_id("loose object")
    Object.objects.create(object_id=loose, size_bytes=1, storage_uri="mpack://x")
    assert run_json("musehub_gc", "--grace", "0", "--dry-run")["deleted"]["objects"] == 2, (
        "without --full-mark gc trusts the refs, which this hand-made row lacks"
    )
    _, _, broken = fsck_failure("--repo", repo.full_name)
    assert oid in codes(broken)["object-ref-missing"], "fsck names the missing ref gc relies on"
    run_json("musehub_gc", "--grace", "0", "--full-mark")
    assert Object.objects.filter(object_id=oid).exists()
    assert not Object.objects.filter(object_id=loose).exists()
    assert not ObjectRef.objects.filter(object_id=oid).exists()


def test_gc_reads_no_manifest_a_repository_refers_to(scene, backend):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        report = run_json("musehub_gc", "--grace", "0")
    assert report["deleted"]["objects"] == len(scene.doomed_objects)
    reads = [
        q["sql"] for q in captured if "manifest_blob" in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT")
    ]
    assert reads == [], "the deleted repository's snapshots went unread, the kept one's were never decoded"
    for oid in scene.kept_blobs:
        assert Object.objects.filter(object_id=oid).exists()


def test_gc_keeps_what_a_snapshot_no_repository_refers_to_still_names(backend):
    """A commit no repository refers to but a branch still points at keeps its snapshot, which keeps its objects."""
    from repos.models import Branch, CommitRef, SnapshotRef

    repo = make_repo()
    history = History()
    history.commit({"kept.txt": b"kept by a dangling head", "other.txt": b"x"})
    push_history(repo, history)
    head = Branch.objects.get(repo=repo, name="main").head_commit_id
    snapshot_id = Commit.objects.get(pk=head).snapshot_id
    CommitRef.objects.filter(repo=repo).delete()
    SnapshotRef.objects.filter(repo=repo).delete()
    ObjectRef.objects.filter(repo=repo).delete()
    run_json("musehub_gc", "--grace", "0")
    assert Commit.objects.filter(pk=head).exists() and Snapshot.objects.filter(pk=snapshot_id).exists()
    assert Object.objects.filter(object_id=blob_id(b"kept by a dangling head")).exists()


def test_gc_removes_stale_uploads_and_their_staging_objects(backend):
    repo = make_repo()
    history = History()
    history.commit({"a.txt": b"never pushed"})
    data = build_pack(history.commits, history.snapshots, history.blobs)
    stage_mpack(repo, data)
    upload = MPackUpload.objects.get(repo=repo)
    assert run_json("musehub_gc")["deleted"]["uploads"] == 0, "a young upload may still be in flight"
    report = run_json("musehub_gc", "--grace", "0")
    assert report["deleted"]["uploads"] == 1
    assert not MPackUpload.objects.exists()
    assert backend.open_upload(str(upload.upload_id)) is None


def test_gc_rejects_a_negative_grace_period(db):
    from tests.maintkit import run_failing

    error, _ = run_failing("musehub_gc", "--grace", "-1")
    assert "--grace must be at least 0" in str(error)


def test_gc_keeps_a_fetch_pack_that_was_just_handed_out_again(backend):
    repo = make_repo()
    history = History()
    history.commit({"a.txt": b"unchanged between two clones"})
    push_history(repo, history)
    first, _ = fetch_all(repo)
    MPack.objects.filter(mpack_id=first["mpack_id"]).update(created_at=now() - dt.timedelta(days=2))
    second, _ = fetch_all(repo)
    assert second["mpack_id"] == first["mpack_id"], "same history, same pack"
    report = run_json("musehub_gc")
    assert report["mpacks"] == []
    assert backend.mpack_exists(first["mpack_id"])
    MPack.objects.filter(mpack_id=first["mpack_id"]).update(created_at=now() - dt.timedelta(days=2))
    assert [p["mpack_id"] for p in run_json("musehub_gc")["mpacks"]] == [first["mpack_id"]]
    assert not backend.mpack_exists(first["mpack_id"])


def test_gc_removes_the_temporary_files_of_writes_a_killed_process_left(backend):
    """The filesystem store writes a temporary file and renames it over; a process killed in between leaves one."""
    history = History()
    history.commit({"a.txt": b"kept"})
    push_history(make_repo(), history)
    from repos.storage.backend import FileSystemMPackStore

    if not isinstance(backend, FileSystemMPackStore):  # S3: a write is whole or absent, nothing to sweep
        assert backend.unfinished_writes(dt.datetime.now(dt.UTC)) == []
        return
    root = Path(backend.storage.location)
    (pack,) = list(backend.list_mpacks())
    left = root / "mpacks" / ".write-killed.part"
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(b"half a pack")
    assert run_json("musehub_gc")["deleted"]["unfinished_writes"] == 0, "a young one may still be written"
    assert left.exists()
    assert run_json("musehub_gc", "--grace", "0", "--dry-run")["deleted"]["unfinished_writes"] == 1
    assert left.exists()
    report = run_json("musehub_gc", "--grace", "0")
    assert report["deleted"]["unfinished_writes"] == 1
    assert not left.exists()
    assert list(backend.list_mpacks()) == [pack] and backend.get_mpack(pack), "finished writes are untouched"
