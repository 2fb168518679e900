"""Seed FN: mpack-native object serving in wire_fetch_mpack.

Fetch reads each covering mpack once and extracts blobs in memory instead of
one storage GET per object; content_cache rows need no storage read; a missing
pack falls back to the legacy per-object key; an unindexed object raises
FetchNotIndexedError; zstd blobs are served decompressed.
"""

from __future__ import annotations

import pytest

from musehub_core.errors import FetchNotIndexedError
from musehub_core.ids import blob_id, fake_id
from musehub_core.mpack import parse_wire_mpack
from repos.models import Object
from repos.storage.backend import record_storage_ops
from tests.factories import make_repo
from tests.seedkit import give_repo, index_object_in_mpack, make_commit, mpack_of, reads_of
from wire.fetch import wire_fetch_mpack

pytestmark = pytest.mark.django_db


def fetched_blobs(backend, result) -> dict[str, bytes]:
    pack = parse_wire_mpack(backend.get_mpack(result["mpack_id"]))
    assert all(not b.get("encoding") for b in pack["blobs"]), "fetch packs carry raw bytes"
    return {b["object_id"]: bytes(b["content"]) for b in pack["blobs"]}


def test_fn1_content_cache_served_without_mpack_get(backend):
    repo = make_repo()
    raw = b"cached content"
    oid = blob_id(raw)
    Object.objects.create(
        object_id=oid, path="cached.txt", size_bytes=len(raw), storage_uri=f"mem://{oid}", content_cache=raw
    )
    give_repo(repo, oid)
    data = mpack_of({oid: raw})
    backend.put_mpack(blob_id(data), data)
    index_object_in_mpack(oid, blob_id(data))
    commit = make_commit(repo, manifest={"cached.txt": oid}, seed="fn1")
    with record_storage_ops() as ops:
        result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert result["blob_count"] == 1
    assert [op.op for op in ops] == ["put_mpack"], "a cache hit needs no per-object or mpack GET"
    assert fetched_blobs(backend, result) == {oid: raw}


def test_fn2_object_served_from_mpack_no_per_object_key(backend):
    repo = make_repo()
    raw = b"mpack-only content"
    oid = blob_id(raw)
    data = mpack_of({oid: raw})
    mpack_id = blob_id(data)
    backend.put_mpack(mpack_id, data)
    index_object_in_mpack(oid, mpack_id)
    give_repo(repo, oid)
    commit = make_commit(repo, manifest={"f.txt": oid}, seed="fn2")
    with record_storage_ops() as ops:
        result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert result["blob_count"] == 1
    assert result["mpack_url"]
    assert not [op for op in ops if op.op == "get"], "no per-object GET when a pack covers the object"
    assert reads_of(ops, mpack_id) == 1
    assert fetched_blobs(backend, result) == {oid: raw}


def test_fn3_two_mpacks_each_fetched_once(backend):
    repo = make_repo()
    raw_a, raw_b = b"object from mpack A", b"object from mpack B"
    oid_a, oid_b = blob_id(raw_a), blob_id(raw_b)
    pack_a, pack_b = mpack_of({oid_a: raw_a}), mpack_of({oid_b: raw_b})
    for data, oid in ((pack_a, oid_a), (pack_b, oid_b)):
        backend.put_mpack(blob_id(data), data)
        index_object_in_mpack(oid, blob_id(data))
    give_repo(repo, oid_a, oid_b)
    commit = make_commit(repo, manifest={"a.txt": oid_a, "b.txt": oid_b}, seed="fn3")
    with record_storage_ops() as ops:
        result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert result["blob_count"] == 2
    assert not [op for op in ops if op.op == "get"]
    assert reads_of(ops, blob_id(pack_a)) == 1, "mpack A fetched exactly once"
    assert reads_of(ops, blob_id(pack_b)) == 1, "mpack B fetched exactly once"
    assert fetched_blobs(backend, result) == {oid_a: raw_a, oid_b: raw_b}


def test_fn4_missing_mpack_falls_back_to_per_object_get(backend):
    repo = make_repo()
    raw = b"fallback content"
    oid = blob_id(raw)
    ghost = fake_id("ghost-mpack")
    index_object_in_mpack(oid, ghost)
    give_repo(repo, oid)
    backend.put(oid, raw)
    commit = make_commit(repo, manifest={"f.txt": oid}, seed="fn4")
    with record_storage_ops() as ops:
        result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert result["blob_count"] == 1
    assert reads_of(ops, ghost) == 1, "attempted the mpack first"
    assert [op.key for op in ops if op.op == "get"] == [oid], "fell back to the per-object key"
    assert fetched_blobs(backend, result) == {oid: raw}


def test_fn5_unindexed_object_raises_fetch_not_indexed_error(backend):
    repo = make_repo()
    raw = b"not indexed yet"
    oid = blob_id(raw)
    Object.objects.create(object_id=oid, path="f.txt", size_bytes=len(raw), storage_uri=f"mem://{oid}")
    give_repo(repo, oid)
    commit = make_commit(repo, manifest={"f.txt": oid}, seed="fn5")
    with pytest.raises(FetchNotIndexedError) as caught:
        wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert oid in caught.value.data["missing"]
    assert caught.value.headers() == {"Retry-After": "2"}


def test_fn6_mixed_sources_all_merged(backend):
    repo = make_repo()
    raw_cached, raw_mpack, raw_legacy = b"in content_cache", b"in mpack storage", b"in per-object storage"
    oid_cached, oid_mpack, oid_legacy = blob_id(raw_cached), blob_id(raw_mpack), blob_id(raw_legacy)
    Object.objects.create(
        object_id=oid_cached,
        path="cached.txt",
        size_bytes=len(raw_cached),
        storage_uri=f"mem://{oid_cached}",
        content_cache=raw_cached,
    )
    cache_pack = mpack_of({oid_cached: raw_cached})
    backend.put_mpack(blob_id(cache_pack), cache_pack)
    index_object_in_mpack(oid_cached, blob_id(cache_pack))
    data = mpack_of({oid_mpack: raw_mpack})
    backend.put_mpack(blob_id(data), data)
    index_object_in_mpack(oid_mpack, blob_id(data))
    index_object_in_mpack(oid_legacy, fake_id("ghost"))
    backend.put(oid_legacy, raw_legacy)
    give_repo(repo, oid_cached, oid_mpack, oid_legacy)
    commit = make_commit(
        repo, manifest={"cached.txt": oid_cached, "mpack.txt": oid_mpack, "legacy.txt": oid_legacy}, seed="fn6"
    )
    with record_storage_ops() as ops:
        result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert result["blob_count"] == 3
    assert fetched_blobs(backend, result) == {oid_cached: raw_cached, oid_mpack: raw_mpack, oid_legacy: raw_legacy}
    assert [op.key for op in ops if op.op == "get"] == [oid_legacy], "only the legacy blob used a per-object GET"
    assert reads_of(ops, blob_id(cache_pack)) == 0, "the cached blob's pack was not read"
    assert reads_of(ops, blob_id(data)) == 1


def test_fn7_zstd_compressed_mpack_objects_decompressed(backend):
    repo = make_repo()
    raw = b"decompressed object content for fn7" * 10
    oid = blob_id(raw)
    data = mpack_of({oid: raw}, zstd=True)
    assert raw not in data, "the pack really holds compressed bytes"
    backend.put_mpack(blob_id(data), data)
    index_object_in_mpack(oid, blob_id(data))
    give_repo(repo, oid)
    commit = make_commit(repo, manifest={"file.txt": oid}, seed="fn7")
    result = wire_fetch_mpack(repo, want=[commit.commit_id], have=[])
    assert result["blob_count"] == 1
    assert fetched_blobs(backend, result) == {oid: raw}
