"""The ``pack-stream`` fetch capability: the pack is the reply, blobs as stored, nothing written to storage."""

from __future__ import annotations

import io
import os

import msgpack
import pytest
import requests

from musehub_core.ids import blob_id
from musehub_core.mpack import decode_verified, index_mpack
from repos.models import MPack, MPackIndex, MPackKind, Repo
from repos.services.repack import PackInfo, build_repack, switch_repack
from repos.storage.backend import get_backend
from repos.storage.layout import mpack_name
from repos.storage.reader import plan_blob_reads, read_blobs, serve_blobs
from tests.factories import History, build_pack, make_repo, make_user, push_history, uid
from tests.httpkit import WireCaller, token_for
from tests.test_http_api import http_push

pytestmark = pytest.mark.django_db

STREAM = ["snapshot-delta", "pack-stream"]


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


@pytest.fixture
def as_alice(alice):
    return WireCaller(token_for(alice))


def _pushed(caller: WireCaller, path: str, history: History, **kwargs) -> None:
    reply = http_push(caller, path, history, **kwargs)
    assert reply.status == 200, reply.content


def _blobs_of(pack: bytes) -> dict[str, dict]:
    return {b["object_id"]: b for b in msgpack.unpackb(pack, raw=False)["blobs"]}


def test_refs_lists_the_capability(as_alice, alice):
    history = History()
    history.commit({"a.txt": b"a"})
    _pushed(as_alice, f"/{alice.username}/s", history)
    assert "pack-stream" in as_alice.get(f"/{alice.username}/s/refs").data["capabilities"]


def test_a_streamed_clone_is_a_valid_pack_with_blobs_as_stored_and_stores_nothing(backend, as_alice, alice):
    history = History()
    text = b"la la la, a verse that repeats\n" * 400
    noise = bytes(range(256)) * 3
    head = history.commit({"lyrics.txt": text, "drums.bin": noise, "tiny": b"x"})
    path = f"/{alice.username}/song"
    # A zstd-encoded push: the hub keeps the encoding the client chose.
    data = build_pack(history.commits, history.snapshots, history.blobs, zstd=True)
    slot = as_alice.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    url = slot.data["upload_url"]
    if "/_storage/" not in url:  # S3: a presigned PUT to the real endpoint
        assert requests.put(url, data=data, headers={"Content-Type": "application/octet-stream"}).ok
    else:
        assert as_alice.put_url(url, data).status == 200
    pushed = as_alice.post(
        f"{path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": "main", "head_commit_id": head["commit_id"], "force": False,
         "commits_count": 1, "blobs_count": 3},
    )  # fmt: skip
    assert pushed.status == 200, pushed.content
    packs_before = set(backend.list_mpacks())
    rows_before = MPack.objects.count()

    reply = as_alice.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": [], "capabilities": STREAM})

    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/x-mpack"
    assert (reply.headers["MuseHub-Commit-Count"], reply.headers["MuseHub-Blob-Count"]) == ("1", "3")
    contents = index_mpack(io.BytesIO(reply.content), verify=True)  # every blob decodes to its id
    assert [c["commit_id"] for c in contents.commits] == [head["commit_id"]]
    assert contents.branch_heads == {"main": head["commit_id"]}
    blobs = _blobs_of(reply.content)
    lyrics = blobs[blob_id(text)]
    assert lyrics.get("encoding") == "zstd" and len(lyrics["content"]) < len(text) // 10, "sent as stored, compressed"
    assert decode_verified(blob_id(text), lyrics["content"], "zstd") == text
    assert set(backend.list_mpacks()) == packs_before, "a streamed fetch writes nothing to storage"
    assert MPack.objects.count() == rows_before
    assert not MPack.objects.filter(kind=MPackKind.FETCH).exists()


def test_an_incremental_streamed_fetch_sends_only_what_changed(as_alice, alice):
    history = History()
    first = history.commit({"a.txt": b"one", "b.txt": b"two"})
    path = f"/{alice.username}/inc"
    _pushed(as_alice, path, history)
    second = history.commit({"a.txt": b"one", "b.txt": b"two, changed"}, parents=[first["commit_id"]])
    _pushed(as_alice, path, history)

    reply = as_alice.post(
        f"{path}/mpack/fetch", {"want": [second["commit_id"]], "have": [first["commit_id"]], "capabilities": STREAM}
    )

    assert reply.status == 200
    body = msgpack.unpackb(reply.content, raw=False)
    assert [c["commit_id"] for c in body["commits"]] == [second["commit_id"]]
    assert set(_blobs_of(reply.content)) == {blob_id(b"two, changed")}
    assert body["snapshots"][0]["base"] == first["snapshot_id"], "the snapshot travels as a delta"


def test_refusals_come_before_the_first_byte_as_json(as_alice, alice):
    history = History()
    head = history.commit({"a.txt": b"a"})
    path = f"/{alice.username}/refuse"
    _pushed(as_alice, path, history)
    unknown = History().commit({"z": b"z"})["commit_id"]

    missing = as_alice.post(f"{path}/mpack/fetch", {"want": [unknown], "have": [], "capabilities": STREAM})
    assert missing.status == 404 and missing.data["error"]

    MPackIndex.objects.filter(entity_id=blob_id(b"a")).delete()
    not_indexed = as_alice.post(
        f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": [], "capabilities": STREAM}
    )
    assert not_indexed.status == 503 and not_indexed.headers.get("Retry-After")


def test_a_private_repository_streams_only_to_readers(as_alice, alice):
    history = History()
    head = history.commit({"secret.txt": b"s"})
    path = f"/{alice.username}/private"
    _pushed(as_alice, path, history)
    Repo.objects.filter(owner=alice.username, slug="private").update(visibility="private")
    stranger = WireCaller(token_for(make_user(f"bob-{uid()}")))
    reply = stranger.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": [], "capabilities": STREAM})
    assert reply.status == 404
    assert b"secret" not in reply.content


# --- falling back when a pack breaks or moves -------------------------------------------------------


def _two_repos_with_the_same_blobs(count: int = 12):
    """Two repositories pushed the same blobs in two different packs; return (history, repo)."""
    history = History()
    files = {f"take-{i:02}.bin": os.urandom(20_000) for i in range(count)}
    history.commit(files)
    first, second = make_repo(), make_repo()
    push_history(first, history)
    push_history(second, History(commits=[], snapshots=[], blobs={}), blobs=history.blobs)
    assert MPack.objects.filter(repo=second).exists()
    return history, first


def test_a_pack_that_breaks_part_way_serves_each_blob_once_from_the_other_pack(settings):
    history, _ = _two_repos_with_the_same_blobs()
    plan = plan_blob_reads(list(history.blobs))
    (chosen,) = plan.by_pack  # all from one pack, the other one is the alternative
    path = get_backend().path_for(mpack_name(chosen))
    with open(path, "r+b") as handle:  # cut the stored pack in the middle of its blobs
        handle.truncate(os.path.getsize(path) // 2)

    served = [blob.object_id for blob in serve_blobs(plan, keep_raw=True)]

    assert sorted(served) == sorted(history.blobs), "every blob exactly once"
    assert dict(read_blobs(plan_blob_reads(list(history.blobs)))) == history.blobs


def test_a_blob_moved_by_a_repack_after_the_fetch_was_planned_is_read_from_its_new_pack(settings):
    history, repo = _two_repos_with_the_same_blobs(4)
    plan = plan_blob_reads(list(history.blobs))
    old = set(MPackIndex.objects.values_list("mpack_id", flat=True))
    # Every blob moves into one new pack and the old packs leave storage (a repack, then gc).
    built = build_repack(repo, [PackInfo(m, "push", 0) for m in sorted(old)])
    switch_repack(built)
    # gc deletes the packs the repack replaced; the new pack may be byte for byte one of them (the same
    # blobs in the same order), and then that one stays.
    for mpack_id in old - {built.mpack_id}:
        get_backend().delete_mpack(mpack_id)

    assert dict((b.object_id, b.raw) for b in serve_blobs(plan, keep_raw=True)) == history.blobs


def _damage_one_blob(mpack_id: str) -> str:
    """Flip a byte in the middle of one blob of the stored pack *mpack_id*; return that blob's id."""
    oid, offset, length = (
        MPackIndex.objects.filter(mpack_id=mpack_id).order_by("entity_id").values_list("entity_id", "offset", "length")
    )[0]
    backend = get_backend()
    data = bytearray(backend.get_mpack(mpack_id))
    data[offset + length // 2] ^= 0xFF
    backend.delete_mpack(mpack_id)
    backend.put_mpack(mpack_id, bytes(data))
    return oid


def test_a_streamed_pack_is_checked_whole_and_a_damaged_one_cuts_the_reply_at_its_end(settings, caplog):
    from musehub_core.errors import IntegrityError

    history, _ = _two_repos_with_the_same_blobs()
    plan = plan_blob_reads(list(history.blobs))
    (chosen,) = plan.by_pack
    intact = {b.object_id: b.stored for b in serve_blobs(plan)}
    assert sorted(intact) == sorted(history.blobs), "an intact pack streams every blob, as stored"
    damaged = _damage_one_blob(chosen)

    served: list[str] = []
    with pytest.raises(IntegrityError, match="does not hash to its id"):
        for blob in serve_blobs(plan_blob_reads(list(history.blobs))):
            served.append(blob.object_id)
    assert damaged in served and len(served) == len(history.blobs), "the mismatch is found at the pack's end"
    assert any(r.levelname == "ERROR" and chosen in r.getMessage() for r in caplog.records)
    assert MPack.objects.get(mpack_id=chosen).damaged_at is not None, "the pack is marked damaged"

    # The next streamed read (the client's retry) checks that pack blob by blob and takes the damaged
    # blob from the other pack that holds it.
    again = plan_blob_reads(list(history.blobs))
    assert again.damaged == {chosen}
    served_again = {b.object_id: b for b in serve_blobs(again)}
    assert sorted(served_again) == sorted(history.blobs)
    for oid, blob in served_again.items():
        assert decode_verified(oid, blob.stored, blob.encoding) == history.blobs[oid]
    # Reading blob by blob (the default fetch decodes each one) falls back the same way.
    assert dict(read_blobs(plan_blob_reads(list(history.blobs)))) == history.blobs


def test_a_streamed_pack_that_ends_early_is_marked_damaged_too(settings):
    from musehub_core.errors import IntegrityError

    history, _ = _two_repos_with_the_same_blobs()
    plan = plan_blob_reads(list(history.blobs))
    (chosen,) = plan.by_pack
    backend = get_backend()
    data = backend.get_mpack(chosen)
    backend.delete_mpack(chosen)
    backend.put_mpack(chosen, data[: len(data) // 2])

    with pytest.raises(IntegrityError, match="ends early"):
        list(serve_blobs(plan))
    assert MPack.objects.get(mpack_id=chosen).damaged_at is not None
    assert {b.object_id for b in serve_blobs(plan_blob_reads(list(history.blobs)))} == set(history.blobs)


def test_rewriting_a_pack_on_the_filesystem_never_shows_a_reader_half_a_file(settings):
    from repos.storage.backend import FileSystemMPackStore

    backend = get_backend()
    assert isinstance(backend, FileSystemMPackStore)
    mpack_id = blob_id(b"pack")
    old = os.urandom(3 * 1024 * 1024)
    backend.put_mpack(mpack_id, old)
    with backend.open_mpack(mpack_id) as reader:
        first = reader.read(1024)
        backend.put_mpack(mpack_id, b"new bytes")  # a rewrite while a streamed fetch reads the pack
        rest = reader.read()
    assert first + rest == old, "the reader kept the whole file it opened"
    assert backend.get_mpack(mpack_id) == b"new bytes"
    folder = os.path.dirname(backend.path_for(mpack_name(mpack_id)))
    assert sorted(os.listdir(folder)) == [os.path.basename(backend.path_for(mpack_name(mpack_id)))], "no temp left"


def test_with_the_content_cache_off_a_fetch_plan_does_not_ask_which_blobs_are_cached(settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from repos.models import Object

    history = History()
    history.commit({f"f{i}.txt": f"file {i}".encode() for i in range(40)})
    push_history(make_repo(), history)  # the cache is off by default
    assert not Object.objects.filter(content_cache__isnull=False).exists()
    with CaptureQueriesContext(connection) as queries:
        plan = plan_blob_reads(list(history.blobs))
    assert plan.cached == [] and plan.count == len(history.blobs)
    cache_probes = [q["sql"] for q in queries.captured_queries if "content_cache" in q["sql"]]
    assert len(cache_probes) == 1 and "LIMIT 1" in cache_probes[0], "one probe of the (partial) index, no id list"

    # With the cache on, what it holds is planned from the database, the rest from packs.
    settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES = 4096
    cached = History()
    cached.commit({f"g{i}.txt": f"cached {i}".encode() for i in range(5)})
    push_history(make_repo(), cached)
    plan = plan_blob_reads([*history.blobs, *cached.blobs])
    assert sorted(plan.cached) == sorted(cached.blobs) and plan.count == len(history.blobs) + len(cached.blobs)
    assert dict(read_blobs(plan)) == {**history.blobs, **cached.blobs}
