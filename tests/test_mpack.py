"""The mpack codec (docs/wire.md §2): round trips, byte-range indexing, and every reason a pack is refused."""

from __future__ import annotations

import io
import os
import tracemalloc

import msgpack
import pytest
import zstandard

from musehub_core.errors import MalformedPack
from musehub_core.ids import all_ids, blob_id, compute_commit_id, compute_snapshot_id, fake_id, is_id
from musehub_core.manifests import all_paths_valid, validate_path
from musehub_core.mpack import (
    MPackWriter,
    PackLimits,
    build_wire_mpack,
    commit_to_wire,
    decode_blob,
    encode_blob,
    index_mpack,
    normalize_commit,
    parse_wire_mpack,
)


def raw_pack(payload: object) -> bytes:
    """Encode *payload* as msgpack directly, bypassing the writer (to build malformed packs)."""
    return msgpack.packb(payload, use_bin_type=True)


def index(data: bytes, **kwargs):
    return index_mpack(io.BytesIO(data), **kwargs)


def refuses(data: bytes, *fragments: str, **kwargs) -> str:
    """Assert that indexing *data* raises MalformedPack whose message holds every fragment."""
    with pytest.raises(MalformedPack) as caught:
        index(data, **kwargs)
    message = caught.value.message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def a_commit(**overrides) -> dict:
    snapshot_id = compute_snapshot_id({})
    committed_at = "2026-01-01T00:00:00+00:00"
    commit = {
        "commit_id": compute_commit_id([], snapshot_id, "m", committed_at),
        "parent_ids": [],
        "snapshot_id": snapshot_id,
        "branch": "main",
        "message": "m",
        "author": "gabriel",
        "committed_at": committed_at,
    }
    commit.update(overrides)
    return commit


def a_snapshot(manifest: dict[str, str]) -> dict:
    return {"snapshot_id": compute_snapshot_id(manifest), "manifest": manifest, "created_at": ""}


def sample_blobs() -> dict[str, bytes]:
    contents = [b"", b"short", b"text line\n" * 300, os.urandom(3000), bytes(10_000), "ünïcödé ✓".encode()]
    return {blob_id(c): c for c in contents}


# --- reading while a pack arrives: the history and blob hooks ------------------------------


def _history_pack(blobs: dict[str, bytes], order: list[str]) -> bytes:
    manifest = {f"f{i}": oid for i, oid in enumerate(blobs)}
    snapshot = a_snapshot(manifest)
    sections = {
        "commits": [a_commit(snapshot_id=snapshot["snapshot_id"])],
        "snapshots": [snapshot],
        "blobs": [{"object_id": oid, "content": raw} for oid, raw in blobs.items()],
        "branch_heads": {},
    }
    return raw_pack({name: sections[name] for name in order})


def test_the_history_hook_runs_before_the_first_blob_and_picks_the_blobs_handed_over():
    blobs = sample_blobs()
    wanted = sorted(blobs)[:2]
    calls: list[str] = []

    def history(contents):
        calls.append(f"history with {len(contents.snapshots)} snapshot(s) and {len(contents.blobs)} blob(s)")
        return set(wanted)

    def blob(entry, raw):
        assert blob_id(raw) == entry.object_id and entry.content is None, "decoded bytes, not kept in the entry"
        calls.append(entry.object_id)

    data = _history_pack(blobs, ["commits", "snapshots", "blobs", "branch_heads"])
    contents = index(data, on_history=history, on_blob=blob)
    assert calls[0] == "history with 1 snapshot(s) and 0 blob(s)", "told before any blob was read"
    assert sorted(calls[1:]) == wanted, "only the blobs the history asked for, each once"
    assert all(b.content is None for b in contents.blobs)

    # Blobs first (a valid pack, though no MuseHub writer makes it): told at the end, no blob handed over.
    calls.clear()
    index(_history_pack(blobs, ["blobs", "commits", "snapshots", "branch_heads"]), on_history=history, on_blob=blob)
    assert calls == ["history with 1 snapshot(s) and 6 blob(s)"]


def test_an_error_a_hook_raises_reaches_the_caller_as_raised():
    data = _history_pack(sample_blobs(), ["commits", "snapshots", "blobs", "branch_heads"])

    def history(contents):
        return None

    def blob(entry, raw):
        raise ValueError("the disk is full")  # a ValueError: not to be mistaken for bad msgpack

    with pytest.raises(ValueError, match="the disk is full"):
        index(data, on_history=history, on_blob=blob)
    with pytest.raises(KeyError):
        index(data, on_history=lambda contents: {}["missing"])


def test_a_section_given_twice_is_refused_so_nothing_escapes_the_history_check():
    blobs = sample_blobs()
    good = msgpack.unpackb(_history_pack(blobs, ["commits", "snapshots", "blobs"]), raw=False)
    forged = a_commit(message="not checked")  # its id no longer matches its content
    # A map with a repeated key, written by hand: commits, snapshots, blobs, then commits again.
    packer = msgpack.Packer(use_bin_type=True)
    data = packer.pack_map_header(4)
    for key, value in [*good.items(), ("commits", [forged])]:
        data += packer.pack(key) + packer.pack(value)
    refuses(data, "second 'commits' section")


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["", "zstd"])
def test_every_indexed_blob_range_is_exactly_its_stored_content(encoding):
    blobs = sample_blobs()
    entries = []
    for oid, raw in blobs.items():
        if encoding == "zstd":
            stored = zstandard.ZstdCompressor().compress(raw)
            entries.append({"object_id": oid, "content": stored, "encoding": "zstd"})
        else:
            entries.append({"object_id": oid, "content": raw})
    data = build_wire_mpack({"commits": [], "snapshots": [], "blobs": entries})

    contents = index(data)

    assert [b.object_id for b in contents.blobs] == [e["object_id"] for e in entries]
    for entry, blob in zip(entries, contents.blobs, strict=True):
        assert data[blob.offset : blob.offset + blob.length] == entry["content"]
        assert blob.length == len(entry["content"])
        assert blob.encoding == encoding
        assert blob.size == len(blobs[blob.object_id])
        assert decode_blob(entry["content"], encoding, max_bytes=1 << 20) == blobs[blob.object_id]


def test_mixed_encodings_in_one_pack_are_indexed_per_blob():
    blobs = sample_blobs()
    entries = []
    for oid, raw in blobs.items():
        stored, encoding = encode_blob(raw)
        entries.append({"object_id": oid, "content": stored, "encoding": encoding})
    assert {e["encoding"] for e in entries} == {"", "zstd"}, "the sample has compressible and incompressible blobs"
    data = build_wire_mpack({"blobs": entries})
    contents = index(data)
    for entry, blob in zip(entries, contents.blobs, strict=True):
        assert blob.encoding == entry["encoding"]
        stored = data[blob.offset : blob.offset + blob.length]
        assert stored == entry["content"]
        assert blob_id(decode_blob(stored, blob.encoding, max_bytes=1 << 20)) == blob.object_id


def test_index_returns_the_digest_and_size_of_the_bytes_read():
    data = build_wire_mpack({"commits": [a_commit()], "snapshots": [a_snapshot({})], "blobs": []})
    contents = index(data)
    assert contents.digest == blob_id(data)
    assert contents.size == len(data)
    assert [c["commit_id"] for c in contents.commits] == [a_commit()["commit_id"]]
    assert [s["snapshot_id"] for s in contents.snapshots] == [compute_snapshot_id({})]


def test_kept_content_is_the_decoded_bytes_up_to_the_limit():
    small, large = b"small" * 10, os.urandom(5000)
    data = build_wire_mpack(
        {
            "blobs": [
                {
                    "object_id": blob_id(small),
                    "content": zstandard.ZstdCompressor().compress(small),
                    "encoding": "zstd",
                },
                {"object_id": blob_id(large), "content": large},
            ]
        }
    )
    contents = index(data, keep_content_up_to=1000)
    assert [b.content for b in contents.blobs] == [small, None]


def test_writer_output_parses_with_parse_wire_mpack():
    blobs = sample_blobs()
    manifest = {f"dir/file{i}": oid for i, oid in enumerate(blobs)}
    snapshot = a_snapshot(manifest)
    commit = a_commit(snapshot_id=snapshot["snapshot_id"])
    out = io.BytesIO()
    writer = MPackWriter(out)
    writer.write_commits([normalize_commit(commit, 0, PackLimits())])
    writer.write_snapshots([snapshot])
    writer.begin_blobs(len(blobs))
    offsets = {oid: writer.write_blob(oid, raw) for oid, raw in blobs.items()}
    key, size = writer.finish({"main": commit["commit_id"]})
    data = out.getvalue()

    assert key == blob_id(data) and size == len(data)
    parsed = parse_wire_mpack(data)
    assert parsed["commits"][0]["commit_id"] == commit["commit_id"]
    assert parsed["snapshots"] == [snapshot]
    assert {b["object_id"]: b["content"] for b in parsed["blobs"]} == blobs
    assert parsed["branch_heads"] == {"main": commit["commit_id"]}
    for oid, offset in offsets.items():
        assert data[offset : offset + len(blobs[oid])] == blobs[oid]


def test_writing_blobs_a_batch_at_once_writes_what_writing_them_one_by_one_writes():
    blobs = sample_blobs()
    entries = [(oid, raw, "") for oid, raw in blobs.items()]
    zstd = encode_blob(b"text " * 400)
    entries.append((blob_id(b"text " * 400), memoryview(zstd[0]), zstd[1]))  # any bytes-like content
    written = []
    for batched in (False, True):
        out = io.BytesIO()
        writer = MPackWriter(out)
        writer.write_commits([])
        writer.write_snapshots([])
        writer.begin_blobs(len(entries))
        if batched:
            writer.write_blobs(entries[:2])
            writer.write_blobs([])
            writer.write_blobs(entries[2:])
        else:
            for oid, content, encoding in entries:
                writer.write_blob(oid, bytes(content), encoding)
        written.append((writer.finish({}), out.getvalue()))
    assert written[0] == written[1]
    parsed = parse_wire_mpack(written[1][1])
    assert [(b["object_id"], b.get("encoding") or "") for b in parsed["blobs"]] == [(o, e) for o, _c, e in entries]


def test_unknown_commit_fields_round_trip_through_normalize_and_commit_to_wire():
    commit = a_commit(
        sem_ver_bump="minor",
        agent_id="agent-7",
        metadata={"reviewers": ["ana", "bo"], "nested": {"x": 1}},
        parent2_commit_id=None,
    )
    normalized = normalize_commit(commit, 0, PackLimits())
    assert normalized["metadata"] == {
        "sem_ver_bump": "minor",
        "agent_id": "agent-7",
        "metadata": {"reviewers": ["ana", "bo"], "nested": {"x": 1}},
    }, "MWP's parent_commit_id/parent2_commit_id are derived from parent_ids, never kept as metadata"
    stored_form = {k: v for k, v in commit.items() if k != "parent2_commit_id"}
    assert commit_to_wire(normalized) == stored_form

    data = build_wire_mpack({"commits": [commit]})
    assert commit_to_wire(parse_wire_mpack(data)["commits"][0]) == stored_form
    assert commit_to_wire(index(data).commits[0]) == stored_form
    assert msgpack.unpackb(data)["commits"] == [commit], "the builder writes wire-form commits as given"

    out = io.BytesIO()
    writer = MPackWriter(out)
    writer.write_commits([normalized])
    writer.write_snapshots([])
    writer.begin_blobs(0)
    writer.finish()
    assert msgpack.unpackb(out.getvalue())["commits"] == [stored_form], (
        "the writer turns normalized commits into wire form"
    )


# --- refusals -----------------------------------------------------------------------


def test_a_truncated_pack_is_refused():
    data = build_wire_mpack({"blobs": [{"object_id": blob_id(b"x" * 100), "content": b"x" * 100}]})
    refuses(data[:-40], "truncated")


def test_trailing_bytes_are_refused():
    data = build_wire_mpack({})
    refuses(data + b"\x00", "trailing bytes")


def test_a_top_level_that_is_not_a_map_is_refused():
    refuses(raw_pack([{"commits": []}]), "map at the top level")
    with pytest.raises(MalformedPack, match="must be a map"):
        parse_wire_mpack(raw_pack([{"commits": []}]))


def test_blobs_that_are_not_a_list_are_refused():
    refuses(raw_pack({"blobs": {"object_id": blob_id(b"")}}), "'blobs'", "list")
    refuses(raw_pack({"commits": "none"}), "'commits'", "list")
    refuses(raw_pack({"snapshots": 3}), "'snapshots'", "list")
    with pytest.raises(MalformedPack, match="'blobs' must be a list"):
        parse_wire_mpack(raw_pack({"blobs": {}}))


def test_a_blob_entry_that_is_not_a_map_is_refused():
    refuses(raw_pack({"blobs": [b"content"]}), "blobs[0]", "map")


def test_blob_content_that_is_not_binary_is_refused():
    refuses(raw_pack({"blobs": [{"object_id": blob_id(b"x"), "content": "x"}]}), "blobs[0].content", "binary")


def test_a_blob_without_object_id_is_refused():
    refuses(raw_pack({"blobs": [{"content": b"x"}]}), "blobs[0]", "object_id")


def test_a_blob_with_an_unknown_encoding_is_refused():
    pack = raw_pack({"blobs": [{"object_id": blob_id(b"x"), "content": b"x", "encoding": "gzip"}]})
    refuses(pack, "blobs[0]", "unknown encoding", "gzip")


def test_a_blob_whose_content_does_not_hash_to_its_id_is_refused():
    claimed = blob_id(b"what the id says")
    message = refuses(raw_pack({"blobs": [{"object_id": claimed, "content": b"what is sent"}]}), "does not hash")
    assert claimed in message


def test_a_zstd_blob_whose_hash_does_not_match_after_decoding_is_refused():
    stored = zstandard.ZstdCompressor().compress(b"real bytes")
    refuses(
        raw_pack({"blobs": [{"object_id": blob_id(stored), "content": stored, "encoding": "zstd"}]}),
        "does not hash",
    )


def test_a_zstd_bomb_is_refused_without_inflating_it():
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(50 * 1024 * 1024))
    assert len(bomb) < 64 * 1024, "a small frame that would inflate to 50 MB"
    pack = raw_pack({"blobs": [{"object_id": fake_id("bomb"), "content": bomb, "encoding": "zstd"}]})
    limits = PackLimits(max_blob_bytes=1024 * 1024)
    tracemalloc.start()
    try:
        refuses(pack, "blobs[0]", "decompresses to more than 1048576 bytes", limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024, f"decoding stopped early, but {peak} bytes were allocated"


def test_a_small_frame_that_declares_fewer_bytes_than_it_holds_is_refused():
    # Frames that declare a small size are decoded in one call into a buffer of that size: a frame that lies
    # about its size cannot write past it.
    raw = b"a chorus line\n" * 100
    frame = bytearray(zstandard.ZstdCompressor(write_content_size=True).compress(raw))
    assert zstandard.frame_content_size(bytes(frame)) == len(raw) and frame[4] == 0x60  # 2-byte size field
    frame[5:7] = (300 - 256).to_bytes(2, "little")
    assert zstandard.frame_content_size(bytes(frame)) == 300
    pack = raw_pack({"blobs": [{"object_id": blob_id(raw), "content": bytes(frame), "encoding": "zstd"}]})
    refuses(pack, "blobs[0]", "not a valid zstd frame")


def test_small_and_large_zstd_blobs_verify_alike():
    small, large = os.urandom(1000) * 3, os.urandom(2 * 1024 * 1024)  # one call, and the streaming path
    blobs = [{"object_id": blob_id(r), "content": zstandard.ZstdCompressor().compress(r), "encoding": "zstd"}
             for r in (small, large)]  # fmt: skip
    contents = index_mpack(io.BytesIO(raw_pack({"blobs": blobs})), keep_content_up_to=4 * 1024 * 1024)
    assert [b.content for b in contents.blobs] == [small, large]
    assert [b.size for b in contents.blobs] == [len(small), len(large)]


def test_a_blob_that_is_not_a_zstd_frame_is_refused():
    pack = raw_pack({"blobs": [{"object_id": blob_id(b"x"), "content": b"not zstd", "encoding": "zstd"}]})
    refuses(pack, "blobs[0]", "not a valid zstd frame")


def test_a_commit_without_commit_id_is_refused():
    commit = a_commit()
    del commit["commit_id"]
    refuses(raw_pack({"commits": [commit]}), "commits[0]", "'commit_id'")


@pytest.mark.parametrize(
    "bad_id",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "a" * 64,
        "md5:" + "a" * 64,
        12,
    ],
)
def test_an_id_of_the_wrong_form_is_refused(bad_id):
    refuses(raw_pack({"commits": [a_commit(commit_id=bad_id)]}), "commits[0].commit_id", "64 lowercase hex")
    refuses(raw_pack({"blobs": [{"object_id": bad_id, "content": b""}]}), "blobs[0].object_id", "64 lowercase hex")
    snapshot = {"snapshot_id": compute_snapshot_id({}), "manifest": {"a": bad_id}}
    refuses(raw_pack({"snapshots": [snapshot]}), "snapshots[0].manifest", "64 lowercase hex")


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/passwd", "is absolute"),
        ("a/../b", "'..' segment"),
        ("..", "'..' segment"),
        ("./a", "'.' or '..' segment"),
        ("a/./b", "'.' or '..' segment"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("a\0b", "NUL"),
        ("a\\b", "backslash"),
        ("", "non-empty"),
    ],
)
def test_bad_manifest_paths_are_refused(path, problem):
    manifest = {path: blob_id(b"x")}
    snapshot = {"snapshot_id": compute_snapshot_id(manifest), "manifest": manifest, "created_at": ""}
    message = refuses(raw_pack({"snapshots": [snapshot]}), "snapshots[0].manifest", problem)
    if path:
        assert repr(path) in message, "the message names the path"


def test_good_manifest_paths_are_accepted():
    manifest = {p: blob_id(b"x") for p in ("a", "a/b/c.txt", ".hidden", "dir/..dots..", "ünï/cödé ✓.md", "a b")}
    snapshot = a_snapshot(manifest)
    assert index(raw_pack({"snapshots": [snapshot]})).snapshots == [snapshot]


def test_more_blobs_than_the_limit_are_refused():
    blobs = [{"object_id": blob_id(bytes([i])), "content": bytes([i])} for i in range(3)]
    data = build_wire_mpack({"blobs": blobs})
    assert len(index(data, limits=PackLimits(max_blobs=3)).blobs) == 3
    refuses(data, "3 blobs", "limit is 2", limits=PackLimits(max_blobs=2))


def test_a_pack_larger_than_the_limit_is_refused():
    content = os.urandom(4096)
    data = build_wire_mpack({"blobs": [{"object_id": blob_id(content), "content": content}]})
    assert index(data, limits=PackLimits(max_pack_bytes=len(data))).size == len(data)
    refuses(data, "larger than the limit of 4000 bytes", limits=PackLimits(max_pack_bytes=4000))
    with pytest.raises(MalformedPack, match="larger than the limit"):
        parse_wire_mpack(data, limits=PackLimits(max_pack_bytes=4000))


def test_a_blob_larger_than_the_blob_limit_is_refused():
    content = os.urandom(2048)
    data = build_wire_mpack({"blobs": [{"object_id": blob_id(content), "content": content}]})
    with pytest.raises(MalformedPack):
        index(data, limits=PackLimits(max_blob_bytes=1024))


# --- path and id checks over a whole manifest at once ----------------------------------------------

TRICKY_PATHS = [  # validate_path takes some and refuses others: the batch check must agree on each
    "a", "a/b", "dir/file.txt", ".hidden", "a/.hidden", "...", "a/.../b", "a/..b", "..a", "a b", "ünï/cödé",
    "line\nbreak", "tab\there", "a\n", "a/\n", "\n", "a/\n/b", "x" * 4096, "é" * 2048, "a" * 4095 + "/",
    "", "/abs", "a//b", "a/", "./a", "a/.", "a/./b", "../a", "a/..", "a/../b", "a\\b", "a\0b", "x" * 4097, "é" * 2049,
]  # fmt: skip


def _accepted(path: object) -> bool:
    try:
        validate_path(path, "test")
    except MalformedPack:
        return False
    return True


@pytest.mark.parametrize("path", TRICKY_PATHS)
def test_checking_all_paths_at_once_agrees_with_checking_each(path):
    assert all_paths_valid([path]) == _accepted(path)
    valid = [p for p in TRICKY_PATHS if _accepted(p)]
    assert all_paths_valid([*valid[:5], path, *valid[5:]]) == _accepted(path), "one bad path among good ones"


def test_checking_all_ids_at_once_agrees_with_checking_each():
    good = [fake_id(str(i)) for i in range(5)]
    assert all_ids(good) and all_ids([]) and all_paths_valid([]) and not all_paths_valid([1])
    for bad in ["sha256:" + "A" * 64, "sha256:" + "0" * 63, fake_id("x")[7:] + "sha256:", 7, None, fake_id("y") + " "]:
        assert not all_ids([*good, bad]) and not is_id(bad)
