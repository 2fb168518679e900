"""The one commit record (musehub_core.records) and the protocol's words (musehub_core.protocol)."""

from __future__ import annotations

import msgpack

from musehub_core import protocol
from musehub_core.ids import compute_commit_id, fake_id
from musehub_core.records import commit_record


def test_commit_record_computes_its_id_and_keeps_the_field_order_every_sender_wrote():
    parents, snapshot = [fake_id("b"), fake_id("a")], fake_id("tree")
    commit = commit_record(
        parent_ids=parents, snapshot_id=snapshot, branch="main", message="m", author="al", committed_at="t"
    )
    assert commit["commit_id"] == compute_commit_id(parents, snapshot, "m", "t")
    assert list(commit) == ["commit_id", "parent_ids", "snapshot_id", "branch", "message", "author", "committed_at"]
    assert commit["parent_ids"] == parents and commit["parent_ids"] is not parents  # as given, a copy
    legacy = {  # how the six builders wrote it by hand: the same msgpack bytes
        "commit_id": compute_commit_id(parents, snapshot, "m", "t"),
        "parent_ids": parents,
        "snapshot_id": snapshot,
        "branch": "main",
        "message": "m",
        "author": "al",
        "committed_at": "t",
    }
    assert msgpack.packb(commit) == msgpack.packb(legacy)


def test_commit_record_stamps_now_and_carries_metadata_only_when_given():
    commit = commit_record(parent_ids=[], snapshot_id=fake_id("s"), branch="b", message="", author="", metadata={})
    assert commit["metadata"] == {} and list(commit)[-1] == "metadata"
    assert commit["committed_at"].endswith("+00:00")
    assert commit["commit_id"] == compute_commit_id([], fake_id("s"), "", commit["committed_at"])
    assert "metadata" not in commit_record(parent_ids=[], snapshot_id=fake_id("s"), branch="b", message="", author="")


def test_the_protocol_words_are_those_of_the_wire_specification():
    assert protocol.CAPABILITIES == ("snapshot-delta", "pack-stream", "push-inline")  # docs/wire.md §3.1, in this order
    assert (protocol.PROTOCOL_HEADER, protocol.NATIVE_PROTOCOL) == ("X-Muse-Protocol", "mpack")
    assert protocol.MSGPACK_TYPE == "application/x-msgpack" and protocol.PACK_TYPE == "application/x-mpack"
    assert dict(protocol.PACK_COUNT_HEADERS) == {
        "commit_count": "MuseHub-Commit-Count",
        "snapshot_count": "MuseHub-Snapshot-Count",
        "blob_count": "MuseHub-Blob-Count",
    }
    assert protocol.INLINE_PACK_MAX_BYTES == 4_194_304
