"""MWP through a live server, driven by a client that speaks exactly what the muse CLI speaks."""

from __future__ import annotations

import os

import msgpack
import pytest
import requests

from musehub_core.ids import from_wire_hex
from musehub_core.mpack import parse_wire_mpack
from repos.models import Commit, MPackIndex, Object, Repo, Snapshot, StagedObject
from tests.factories import History, make_repo, make_user, push_history, uid
from tests.httpkit import row_counts, token_for
from tests.mwpkit import HttpError, LocalRepo, MwpClient, commit_id
from wire.fetch import wire_fetch_mpack

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


@pytest.fixture
def hub(live_server, alice):
    """A client for a fresh repository URL in alice's namespace (created by the first push)."""
    return MwpClient(f"{live_server.url}/{alice.username}/demo-{uid()}", token_for(alice))


def first_tree() -> dict[str, bytes]:
    return {
        "a.txt": b"hello\n",
        "empty.txt": b"",
        "dir/nested/n.txt": "unicodé ♫".encode(),
        "big.bin": os.urandom(100_000),
        **{f"many/f{i}.txt": f"file {i}".encode() for i in range(450)},
    }


def stored_state(url: str) -> dict:
    owner, slug = url.rsplit("/", 2)[-2:]
    repo = Repo.objects.get(owner=owner, slug=slug)
    return {"repo": repo, "commits": repo.commit_refs.count(), "objects": repo.object_refs.count()}


def test_first_push_creates_the_repo_and_stores_by_the_rules(hub, backend):
    if backend.__class__.__name__.startswith("S3"):
        hub.presign_content_type = "application/octet-stream"
    local = LocalRepo()
    head = local.commit(first_tree(), message="first")
    reply = hub.push(local)
    assert reply["ok"] is True
    assert reply["branch_heads"] == {"main": head}
    assert hub.calls[:4] == ["GET /refs", "POST /filter-objects", "POST /presign", "PUT presigned"]
    assert hub.calls.count("POST /push/objects") == 2, "454 small objects go in chunks of 400"
    state = stored_state(hub.url)
    assert state["commits"] == 1 and state["objects"] == len(set(local.objects))
    assert Commit.objects.get(commit_id=from_wire_hex(head)).storage_uri is None
    assert not Object.objects.exclude(storage_uri__startswith="mpack://").exists(), "every blob lives in an mpack"
    assert MPackIndex.objects.filter(entity_id__in=[from_wire_hex(o) for o in local.objects]).count() == len(
        local.objects
    )
    assert not StagedObject.objects.exists()
    assert not list(backend.list_objects()), "no per-object key remains"


def test_clone_fetch_and_pull_round_trip(hub):
    local = LocalRepo()
    local.commit(first_tree(), message="first")
    hub.push(local)
    clone = MwpClient(hub.url).clone()
    assert clone.files_at(clone.heads["main"]) == local.files_at(local.heads["main"])
    assert clone.commits[clone.heads["main"]]["committed_at"] == local.commits[local.heads["main"]]["committed_at"]

    files = {**local.files_at(local.heads["main"]), "a.txt": b"changed\n", "new.txt": b"new"}
    second = local.commit(files, message="second")
    hub.calls.clear()
    assert hub.push(local)["ok"] is True
    assert [c for c in hub.calls if c.startswith("POST /push/objects")] == ["POST /push/objects"]

    pack = MwpClient(hub.url, hub.token).fetch(clone)
    assert [c["commit_id"] for c in pack["commits"]] == [second]
    assert sorted(o["object_id"] for o in pack["objects"]) == sorted(
        {local.manifest_at(second)["a.txt"], local.manifest_at(second)["new.txt"]}
    ), "fetch sends only what have lacks"

    third = local.commit({**files, "third.txt": b"3"}, message="third")
    hub.push(local)
    puller = MwpClient(hub.url, hub.token)
    pulled = puller.pull(clone)
    assert "POST /negotiate" in puller.calls
    assert [c["commit_id"] for c in pulled["commits"]] == [third]
    assert clone.files_at(third) == local.files_at(third)


def test_optional_commit_fields_round_trip_unchanged(hub):
    local = LocalRepo()
    head = local.commit({"x": b"x"}, message="meta")
    hub.push(local)
    clone = MwpClient(hub.url).clone()
    assert clone.commits[head] == local.commits[head]


def test_zero_byte_files_are_stored_and_served(hub):
    local = LocalRepo()
    head = local.commit({"empty.txt": b"", "full.txt": b"x"}, message="empty")
    hub.push(local)
    pack = MwpClient(hub.url)._request("POST", "fetch", {"want": [head], "have": []})
    empties = [o for o in pack["objects"] if o["content"] == b""]
    assert len(empties) == 1 and empties[0]["object_id"] == local.manifest_at(head)["empty.txt"]


def test_a_fetch_reply_past_the_memory_spool_arrives_whole_with_its_length(hub):
    """A reply is assembled before it is sent: past 8 MiB in a temporary file, then sent with its Content-Length."""
    local = LocalRepo()
    takes = {f"take-{i}.wav": os.urandom(3 * 1024 * 1024) for i in range(3)}
    head = local.commit(takes, message="takes")
    hub.push(local)
    reply = requests.post(
        f"{hub.url}/fetch",
        data=msgpack.packb({"want": [head], "have": []}),
        headers={"Content-Type": "application/x-msgpack", "Accept": "application/x-msgpack"},
        timeout=60,
    )
    assert reply.status_code == 200 and int(reply.headers["Content-Length"]) == len(reply.content) > 9 * 1024 * 1024
    objects = msgpack.unpackb(reply.content)["objects"]
    assert sorted(o["content"] for o in objects) == sorted(takes.values())


def test_diverged_push_is_409_and_force_overwrites(hub):
    local = LocalRepo()
    base = local.commit({"a": b"1"}, message="base")
    hub.push(local)
    other = MwpClient(hub.url).clone()
    other.commit({"a": b"theirs"}, message="theirs")
    assert MwpClient(hub.url, hub.token).push(other)["ok"] is True
    mine = local.commit({"a": b"mine"}, message="mine")
    with pytest.raises(HttpError) as caught:
        hub.push(local)
    assert caught.value.status == 409
    assert hub.push(local, force=True)["branch_heads"]["main"] == mine
    assert base in local.commits


def test_merge_commits_with_two_parents_push_as_fast_forward(hub):
    local = LocalRepo()
    local.commit({"a": b"1"}, message="base")
    hub.push(local)
    other = MwpClient(hub.url).clone()
    theirs = other.commit({"a": b"1", "b": b"2"}, message="theirs")
    MwpClient(hub.url, hub.token).push(other)
    local.commit({"a": b"1", "c": b"3"}, message="mine")
    MwpClient(hub.url, hub.token).pull(local)
    merged = local.commit({"a": b"1", "b": b"2", "c": b"3"}, message="Merge origin/main into main", parent2=theirs)
    assert hub.push(local)["branch_heads"]["main"] == merged
    stored = Commit.objects.get(commit_id=from_wire_hex(merged))
    assert stored.parent_ids == [from_wire_hex(local.commits[merged]["parent_commit_id"]), from_wire_hex(theirs)]


def test_repushing_known_history_is_idempotent(hub):
    local = LocalRepo()
    local.commit({"a": b"1"}, message="one")
    hub.push(local)
    before = row_counts()
    client = MwpClient(hub.url, hub.token)
    bundle = {"commits": list(local.commits.values()), "snapshots": list(local.snapshots.values()), "objects": []}
    reply = client._request("POST", "push", {"bundle": bundle, "branch": "main", "force": False})
    assert reply["ok"] is True
    objects = [{"object_id": o, "content": c} for o, c in local.objects.items()]
    assert client._request("POST", "push/objects", {"objects": objects}) == {"stored": 0, "skipped": 1}
    assert row_counts() == before


def test_private_repo_cannot_be_cloned_anonymously(live_server, alice):
    repo = make_repo(alice, f"p-{uid()}", visibility="private")
    url = f"{live_server.url}/{alice.username}/{repo.slug}"
    with pytest.raises(HttpError) as caught:
        MwpClient(url).clone()
    assert caught.value.status == 404
    local = LocalRepo()
    local.commit({"s": b"secret"}, message="s")
    MwpClient(url, token_for(alice)).push(local)
    with pytest.raises(HttpError):
        MwpClient(url).clone()


def test_push_without_token_is_401(live_server, alice):
    local = LocalRepo()
    local.commit({"a": b"1"}, message="x")
    with pytest.raises(HttpError) as caught:
        MwpClient(f"{live_server.url}/{alice.username}/nope").push(local)
    assert caught.value.status == 401


def test_bundle_with_wrong_commit_id_is_422_and_writes_nothing(hub):
    local = LocalRepo()
    head = local.commit({"a": b"1"}, message="x")
    bad = dict(local.commits[head], message="tampered")
    client = MwpClient(hub.url, hub.token)
    client._request(
        "POST", "push/objects", {"objects": [{"object_id": o, "content": c} for o, c in local.objects.items()]}
    )
    before = row_counts()
    with pytest.raises(HttpError) as caught:
        client._request("POST", "push", {"bundle": {"commits": [bad], "snapshots": list(local.snapshots.values())},
                                         "branch": "main", "force": False})  # fmt: skip
    assert caught.value.status == 422 and b"does not match" in caught.value.body
    assert row_counts() == before


def test_objects_inline_in_the_bundle_are_stored(hub):
    local = LocalRepo()
    head = local.commit({"a.txt": b"inline a", "b.txt": b"inline b"}, message="inline")
    objects = [{"object_id": o, "content": c} for o, c in local.objects.items()]
    bundle = {"commits": [local.commits[head]], "snapshots": list(local.snapshots.values()), "objects": objects}
    assert hub._request("POST", "push", {"bundle": bundle, "branch": "main", "force": False})["ok"] is True
    assert MwpClient(hub.url).clone().files_at(head) == local.files_at(head)


def test_object_whose_bytes_do_not_hash_is_refused(hub):
    with pytest.raises(HttpError) as caught:
        hub._request("POST", "push/objects", {"objects": [{"object_id": "a" * 64, "content": b"not a"}]})
    assert caught.value.status == 422 and b"does not hash" in caught.value.body


def test_presigned_upload_is_verified_by_the_hub(hub):
    local = LocalRepo()
    head = local.commit({"big.bin": os.urandom(70_000)}, message="big")
    oid = local.manifest_at(head)["big.bin"]
    url = hub._request("POST", "presign", {"object_ids": [oid], "direction": "put"})["presigned"][oid]
    with pytest.raises(Exception) as caught:
        hub.put_presigned(url, b"other bytes")
    assert "400" in str(caught.value)
    with pytest.raises(HttpError) as refused:
        hub._request("POST", "push", {"bundle": {"commits": [local.commits[head]], "snapshots": list(local.snapshots.values())},
                                      "branch": "main", "force": False})  # fmt: skip
    assert refused.value.status == 422 and b"never uploaded" in refused.value.body


def test_presign_can_be_switched_off(hub, settings):
    settings.MUSEHUB_MWP_PRESIGN = False
    local = LocalRepo()
    head = local.commit({"big.bin": os.urandom(70_000)}, message="inline")
    assert hub.push(local)["ok"] is True
    assert "PUT presigned" not in hub.calls
    assert MwpClient(hub.url).clone().files_at(head) == local.files_at(head)


def test_presigned_uploads_fold_into_an_mpack_on_s3(hub, s3_backend):
    """The presign path on a real S3 endpoint, PUT as application/octet-stream.

    moto's server does not store a form-typed presigned PUT faithfully (the
    muse CLI sends urllib's default form type; real S3 and MinIO store it), so
    here the body goes as octet-stream. What it exercises is the same: the URL
    signs no content type, the hub reads the staged object from S3, verifies it
    and folds it into an mpack, and no staged key remains.
    """
    hub.presign_content_type = "application/octet-stream"
    local = LocalRepo()
    head = local.commit({"big.bin": os.urandom(70_000), "small": b"s"}, message="s3")
    oid = local.manifest_at(head)["big.bin"]
    url = hub._request("POST", "presign", {"object_ids": [oid], "direction": "put"})["presigned"][oid]
    assert url.startswith(s3_backend.storage.endpoint_url) and "SignedHeaders=host&" in url
    hub.put_presigned(url, b"wrong bytes")
    bundle = {"commits": [local.commits[head]], "snapshots": list(local.snapshots.values()), "objects": []}
    hub._request(
        "POST", "push/objects", {"objects": [{"object_id": local.manifest_at(head)["small"], "content": b"s"}]}
    )
    with pytest.raises(HttpError) as caught:
        hub._request("POST", "push", {"bundle": bundle, "branch": "main", "force": False})
    assert caught.value.status == 422 and b"hash" in caught.value.body
    hub.put_presigned(url, local.objects[oid])
    assert hub._request("POST", "push", {"bundle": bundle, "branch": "main", "force": False})["ok"] is True
    assert MwpClient(hub.url).clone().files_at(head) == local.files_at(head)
    assert not [name for name in s3_backend._list("incoming/")], "no staged key remains"


def test_fetch_larger_than_the_cli_cap_is_a_clear_error(hub, settings):
    local = LocalRepo()
    head = local.commit({"big.bin": os.urandom(200_000)}, message="big")
    hub.push(local)
    settings.MUSEHUB_MWP_MAX_REPLY_BYTES = 150_000
    with pytest.raises(HttpError) as caught:
        MwpClient(hub.url).clone()
    assert caught.value.status == 413 and b"musehub clone" in caught.value.body
    assert head


def test_negotiate_acks_known_commits_and_finds_the_base(hub):
    local = LocalRepo()
    first = local.commit({"a": b"1"}, message="1")
    second = local.commit({"a": b"2"}, message="2")
    hub.push(local)
    unknown = commit_id([], "0" * 64, "never pushed", "2020-01-01T00:00:00+00:00")
    reply = hub._request("POST", "negotiate", {"want": [second], "have": [unknown, first]})
    assert reply == {"ack": [first], "common_base": first, "ready": True}
    assert hub._request("POST", "negotiate", {"want": [second], "have": [unknown]})["ready"] is False


def test_mwp_history_is_fetchable_through_the_mpack_protocol(hub, backend):
    if backend.__class__.__name__.startswith("S3"):
        hub.presign_content_type = "application/octet-stream"
    local = LocalRepo()
    head = local.commit({"a.txt": b"via mwp", "big.bin": os.urandom(70_000)}, message="mwp")
    hub.push(local)
    repo = stored_state(hub.url)["repo"]
    result = wire_fetch_mpack(repo, want=[from_wire_hex(head)], have=[])
    pack = parse_wire_mpack(backend.get_mpack(result["mpack_id"]))
    blobs = {b["object_id"]: bytes(b["content"]) for b in pack["blobs"]}
    assert {from_wire_hex(o): c for o, c in local.objects.items()} == blobs
    assert pack["commits"][0]["commit_id"] == from_wire_hex(head)
    assert pack["commits"][0]["metadata"]["agent_id"] == "agent-7", "optional fields travel through both protocols"


def test_native_history_is_fetchable_through_mwp(live_server, alice):
    repo = make_repo(alice, f"n-{uid()}")
    history = History()
    first = history.commit({"x.txt": b"native", "y/z.txt": b"deep"})
    push_history(repo, history)
    clone = MwpClient(f"{live_server.url}/{alice.username}/{repo.slug}").clone()
    head = first["commit_id"][7:]
    assert clone.heads == {"main": head}
    assert clone.files_at(head) == {"x.txt": b"native", "y/z.txt": b"deep"}
    assert Snapshot.objects.filter(snapshot_id=first["snapshot_id"], storage_uri=None).exists()
