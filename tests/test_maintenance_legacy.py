"""musehub_migrate_legacy: per-object blobs move into mpacks, get byte-range index rows and serve fetches."""

from __future__ import annotations

import pytest

from musehub_core.errors import FetchNotIndexedError
from musehub_core.ids import blob_id, compute_branch_id
from repos.models import Branch, MPack, MPackIndex, MPackKind, Object, ObjectRef
from repos.storage.backend import record_storage_ops
from tests.factories import build_pack, make_repo
from tests.maintkit import fetch_all, packs_read, random_blob, run_failing, run_json
from tests.seedkit import make_commit
from wire.fetch import wire_fetch_mpack

pytestmark = pytest.mark.django_db

LEGACY = {
    "small.txt": b"a small legacy blob",
    "text.txt": b"compressible legacy text\n" * 400,
    "random.bin": random_blob(9000),
}


def store_legacy(backend, repo, files: dict[str, bytes], *, seed: str = "legacy") -> dict[str, bytes]:
    """Store *files* the way older hubs did: one key per blob, an Object row naming it, no index entry."""
    blobs = {}
    for raw in files.values():
        oid = blob_id(raw)
        uri = backend.put(oid, raw)
        Object.objects.create(object_id=oid, size_bytes=len(raw), path="legacy", storage_uri=uri)
        ObjectRef.objects.create(repo=repo, object_id=oid)
        blobs[oid] = raw
    commit = make_commit(repo, manifest={path: blob_id(raw) for path, raw in files.items()}, seed=seed)
    Branch.objects.create(
        branch_id=compute_branch_id(repo.repo_id, "main"), repo=repo, name="main", head_commit_id=commit.commit_id
    )
    return blobs


def test_migrate_legacy_moves_blobs_into_an_indexed_pack_that_serves_fetches(backend):
    repo = make_repo()
    blobs = store_legacy(backend, repo, LEGACY)
    commit_id = repo.commit_refs.get().commit_id
    with pytest.raises(FetchNotIndexedError):
        wire_fetch_mpack(repo, want=[commit_id], have=[])

    report = run_json("musehub_migrate_legacy")
    assert report["moved"] == 3 and report["problems"] == []
    (pack,) = report["mpacks"]
    assert MPack.objects.get(mpack_id=pack).kind == MPackKind.REPACK
    rows = {
        oid: (m, off, length, enc)
        for oid, m, off, length, enc in MPackIndex.objects.values_list(
            "entity_id", "mpack_id", "offset", "length", "encoding"
        )
    }
    assert set(rows) == set(blobs)
    assert all(m == pack and off is not None and length is not None for m, off, length, _ in rows.values())
    assert rows[blob_id(LEGACY["text.txt"])][3] == "zstd", "compressible blobs are stored compressed"
    assert set(Object.objects.values_list("storage_uri", flat=True)) == {f"mpack://{pack}"}
    assert all(backend.exists(oid) for oid in blobs), "without --delete-legacy the old keys stay"

    with record_storage_ops() as ops:
        fetched, served = fetch_all(repo)
    assert served == blobs
    assert not [op for op in ops if op.op == "get"], "no per-object key is read"
    assert packs_read(ops) - {fetched["mpack_id"]} == {pack}
    assert run_json("musehub_fsck")["ok"] is True
    assert run_json("musehub_migrate_legacy")["moved"] == 0, "a second run finds nothing to move"


def test_migrate_legacy_deletes_the_old_keys_when_asked(backend):
    repo = make_repo()
    blobs = store_legacy(backend, repo, LEGACY)
    report = run_json("musehub_migrate_legacy", "--delete-legacy")
    assert report["deleted_keys"] == 3
    assert not any(backend.exists(oid) for oid in blobs)
    assert list(backend.list_objects()) == []
    assert fetch_all(repo)[1] == blobs


def test_a_later_run_with_delete_legacy_removes_keys_an_earlier_run_left(backend):
    repo = make_repo()
    blobs = store_legacy(backend, repo, LEGACY)
    run_json("musehub_migrate_legacy")
    report = run_json("musehub_migrate_legacy", "--delete-legacy")
    assert report["moved"] == 0 and report["deleted_keys"] == 3
    assert not any(backend.exists(oid) for oid in blobs)


def test_migrate_legacy_batches_blobs_into_several_packs(backend):
    repo = make_repo()
    store_legacy(backend, repo, LEGACY)
    report = run_json("musehub_migrate_legacy", "--batch-blobs", "2")
    assert report["moved"] == 3 and len(report["mpacks"]) == 2


def test_migrate_legacy_indexes_blobs_in_place_when_their_pack_holds_them(backend):
    repo = make_repo()
    raw = random_blob(5000)
    oid = blob_id(raw)
    data = build_pack(blobs={oid: raw})
    pack = blob_id(data)
    backend.put_mpack(pack, data)
    MPack.objects.create(mpack_id=pack, kind=MPackKind.PUSH, repo=repo, size_bytes=len(data), blob_count=1)
    Object.objects.create(object_id=oid, size_bytes=len(raw), storage_uri=f"mpack://{pack}")
    ObjectRef.objects.create(repo=repo, object_id=oid)
    commit = make_commit(repo, manifest={"r.bin": oid}, seed="in-place")
    Branch.objects.create(
        branch_id=compute_branch_id(repo.repo_id, "main"), repo=repo, name="main", head_commit_id=commit.commit_id
    )

    report = run_json("musehub_migrate_legacy")
    assert report["indexed_in_place"] == 1 and report["moved"] == 0
    ((mpack_id, offset, length),) = MPackIndex.objects.values_list("mpack_id", "offset", "length")
    assert mpack_id == pack and data[offset : offset + length] == raw
    assert fetch_all(repo)[1] == {oid: raw}


def test_migrate_legacy_names_blobs_nothing_can_serve(backend):
    repo = make_repo()
    blobs = store_legacy(backend, repo, {"a.txt": b"kept", "b.txt": b"lost"})
    lost = blob_id(b"lost")
    backend.delete(lost)
    error, text = run_failing("musehub_migrate_legacy")
    assert "restore their bytes from backup" in str(error)
    assert lost in text
    assert MPackIndex.objects.filter(entity_id=blob_id(b"kept")).exists()
    assert not MPackIndex.objects.filter(entity_id=lost).exists()
    assert set(blobs) == {blob_id(b"kept"), lost}


def test_migrate_legacy_refuses_a_legacy_key_whose_bytes_are_wrong(backend):
    repo = make_repo()
    store_legacy(backend, repo, {"a.txt": b"genuine"})
    oid = blob_id(b"genuine")
    backend.put(oid, b"tampered")
    _, text = run_failing("musehub_migrate_legacy")
    assert oid in text
    assert not MPackIndex.objects.exists()
