"""Hostile input: deep nesting and zstd bombs get a 4xx JSON sentence, never a 500 or a worker that balloons.

- Request bodies (msgpack or JSON) may nest ``MAX_BODY_DEPTH`` (100) levels; deeper is 400 ``too_deep``.
- A commit's optional fields may nest ``MAX_FIELD_DEPTH`` (64) levels; deeper is 422 naming the commit,
  in a native pack and in an MWP push bundle alike.
- Blobs are verified by decompressing and hashing 1 MiB at a time, so a zstd bomb is refused with
  422 and a big legitimate blob is accepted without either ever being held in memory (measured in
  a fresh interpreter: peak RSS is a high-water mark, and this test process has been bigger).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import zstandard
from django.test import Client

from hubhttp.codecs import MAX_BODY_DEPTH, BodyTooDeep, JSONBodyParser, MsgpackParser
from musehub_core.errors import MalformedPack
from musehub_core.ids import blob_id, compute_commit_id, compute_snapshot_id, to_wire_hex
from musehub_core.mpack import (
    MAX_FIELD_DEPTH,
    PackLimits,
    decode_verified,
    index_mpack,
    nests_deeper_than,
    parse_wire_mpack,
    verify_blob,
)
from repos.models import Commit
from tests.factories import History, build_pack, make_user, timestamp, uid
from tests.httpkit import WireCaller, row_counts, token_for
from tests.test_http_api import http_push

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
MARKER = "@@deep@@"


def deep_msgpack(levels: int) -> bytes:
    """msgpack bytes of *levels* nested one-element lists around nil (msgpack's packer refuses past ~1,000)."""
    return b"\x91" * levels + b"\xc0"


def deep_value(levels: int) -> object:
    """The value :func:`deep_msgpack` encodes: *levels* nested lists around None."""
    value: object = None
    for _ in range(levels):
        value = [value]
    return value


def with_deep(packed: bytes, levels: int) -> bytes:
    """Return *packed* with the one packed MARKER string replaced by a value nested *levels* deep."""
    marker = msgpack.packb(MARKER)
    assert packed.count(marker) == 1
    return packed.replace(marker, deep_msgpack(levels))


def assert_json_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) >= {"error", "detail"} and body["detail"].endswith(".")
    for word in words:
        assert word in body["detail"], (word, body["detail"])
    return body


@pytest.fixture
def user():
    return make_user(f"h-{uid()}")


@pytest.fixture
def caller(user):
    return WireCaller(token_for(user))


@pytest.fixture
def repo_path(user, caller):
    """A repository with one pushed commit, so every wire endpoint has something to look at."""
    path = f"/{user.username}/target"
    history = History()
    history.commit({"ok.txt": b"fine"})
    assert http_push(caller, path, history).status == 200
    return path


# --- the depth check itself ----------------------------------------------------------------------


def test_depth_is_counted_without_recursion():
    assert not nests_deeper_than(0, 0) and not nests_deeper_than("x" * 10, 0)
    assert nests_deeper_than([], 0) and not nests_deeper_than([], 1)
    assert not nests_deeper_than({"a": [1, {"b": ()}]}, 4) and nests_deeper_than({"a": [1, {"b": ()}]}, 3)
    assert nests_deeper_than({(((),),): 1}, 3), "map keys count (msgpack map keys may be tuples)"
    value = deep_value(200_000)  # far deeper than any recursive walk survives
    assert nests_deeper_than(value, 64) and not nests_deeper_than(value, 200_000)


@pytest.mark.parametrize("parser", [MsgpackParser(), JSONBodyParser()], ids=["msgpack", "json"])
def test_parsers_allow_exactly_the_body_depth_limit(parser):
    def encode(levels: int) -> bytes:
        if isinstance(parser, MsgpackParser):
            return deep_msgpack(levels)
        return ("[" * levels + "]" * levels).encode()

    assert nests_deeper_than(parser.parse(io.BytesIO(encode(MAX_BODY_DEPTH))), MAX_BODY_DEPTH - 1)
    for levels in (MAX_BODY_DEPTH + 1, 5_000, 50_000):
        with pytest.raises(BodyTooDeep, match=f"deeper than {MAX_BODY_DEPTH} levels"):
            parser.parse(io.BytesIO(encode(levels)))


# --- request bodies: 400 ---------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [500, 50_000])
@pytest.mark.parametrize("target", ["api-repos", "mpack/fetch", "filter-objects"])
def test_deep_json_body_is_400(user, repo_path, target, levels):
    url = "/api/v1/repos" if target == "api-repos" else f"{repo_path}/{target}"
    body = '{"name": ' + "[" * levels + "]" * levels + "}"
    response = Client().post(
        url,
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token_for(user)}", "Accept": "application/json"},
    )
    error = assert_json_error(response, 400, f"deeper than {MAX_BODY_DEPTH} levels")
    assert error["error"] == "too_deep"


WIRE_ENDPOINTS = ["filter-objects", "mpack/upload", "mpack/push", "mpack/fetch", "presign", "push/objects",
                  "fetch", "negotiate"]  # fmt: skip


@pytest.mark.parametrize("levels", [1_000, 5_000])
@pytest.mark.parametrize("endpoint", WIRE_ENDPOINTS)
def test_deep_msgpack_body_is_400(caller, repo_path, endpoint, levels):
    before = row_counts()
    as_body = caller.post(f"{repo_path}/{endpoint}", raw=deep_msgpack(levels))
    in_a_field = caller.post(f"{repo_path}/{endpoint}", raw=b"\x81" + msgpack.packb("want") + deep_msgpack(levels))
    for reply in (as_body, in_a_field):
        assert reply.status == 400, (reply.status, reply.content[:300])
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.data["error"] == "too_deep" and f"deeper than {MAX_BODY_DEPTH} levels" in reply.data["detail"]
    assert row_counts() == before


def test_a_body_within_the_limit_still_works(caller, repo_path):
    reply = caller.post(f"{repo_path}/filter-objects", {"object_ids": [], "extra": deep_value(MAX_BODY_DEPTH - 1)})
    assert reply.status == 200 and reply.data == {"missing": []}


@pytest.mark.parametrize("endpoint", [*WIRE_ENDPOINTS, "push"])
def test_deep_values_within_the_limit_in_every_field_are_4xx(caller, repo_path, endpoint):
    deep = deep_value(MAX_BODY_DEPTH - 2)
    fields = ["object_ids", "objects", "mpack_key", "size", "branch", "head_commit_id", "force", "commits_count",
              "blobs_count", "want", "have", "capabilities", "direction", "bundle"]  # fmt: skip
    before = row_counts()
    for shape in ({"x": deep}, [deep]):
        reply = caller.post(f"{repo_path}/{endpoint}", {field: shape for field in fields})
        assert 400 <= reply.status < 500 and reply.data["detail"], (reply.status, reply.content[:300])
    assert row_counts() == before


# --- commit optional fields in packs: 422 naming the commit ----------------------------------------


def pack_with_deep_field(levels: int) -> tuple[bytes, dict]:
    history = History()
    commit = history.commit({"a.txt": b"a"}, deep=MARKER, agent_id="agent-7")
    return with_deep(build_pack(history.commits, history.snapshots, history.blobs), levels), commit


def push_raw(caller: WireCaller, path: str, data: bytes, commit: dict):
    slot = caller.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert slot.status == 200, slot.content
    assert caller.put_url(slot.data["upload_url"], data).status == 200
    return caller.post(
        f"{path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": "main", "head_commit_id": commit["commit_id"], "force": True,
         "commits_count": 1, "blobs_count": 1},
    )  # fmt: skip


@pytest.mark.parametrize("levels", [MAX_FIELD_DEPTH + 1, 950, 2_000])
def test_pack_with_a_deep_commit_field_is_422_naming_the_commit(caller, repo_path, levels):
    data, commit = pack_with_deep_field(levels)
    before = row_counts()
    reply = push_raw(caller, repo_path, data, commit)
    assert reply.status == 422, (reply.status, reply.content[:300])
    assert reply.headers["Content-Type"].startswith("application/json")
    detail = reply.data["detail"]
    assert "commits[0]" in detail and f"{MAX_FIELD_DEPTH} levels" in detail, detail
    if levels < 1_000:  # decodable: the message names the commit's id and the field too
        assert commit["commit_id"] in detail and "'deep'" in detail
    assert row_counts() == before
    with pytest.raises(MalformedPack, match=r"commits\[0\]" if levels < 1_000 else "too deeply"):
        parse_wire_mpack(data)  # it decodes the whole pack at once: past msgpack's depth, no commit to name
    with pytest.raises(MalformedPack, match=r"commits\[0\]"):
        index_mpack(io.BytesIO(data))


def test_a_commit_field_at_the_limit_is_kept(caller, repo_path):
    data, commit = pack_with_deep_field(MAX_FIELD_DEPTH)
    reply = push_raw(caller, repo_path, data, commit)
    assert reply.status == 200, reply.content[:300]
    stored = Commit.objects.get(commit_id=commit["commit_id"]).metadata
    assert stored["deep"] == deep_value(MAX_FIELD_DEPTH) and stored["agent_id"] == "agent-7"


def test_deep_values_elsewhere_in_a_pack_are_422(caller, repo_path):
    history = History()
    commit = history.commit({"a.txt": b"a"})
    history.snapshots[0]["manifest"]["b.txt"] = MARKER
    for levels in (900, 2_000):
        data = with_deep(build_pack(history.commits, history.snapshots, history.blobs), levels)
        reply = push_raw(caller, repo_path, data, commit)
        assert reply.status == 422 and "snapshots[0]" in reply.data["detail"], reply.content[:300]


# --- MWP push bundles: 422 -------------------------------------------------------------------------


def mwp_push_body(levels: int) -> tuple[bytes, str]:
    manifest = {"a.txt": to_wire_hex(blob_id(b"a"))}
    snapshot = to_wire_hex(compute_snapshot_id({"a.txt": blob_id(b"a")}))
    stamp = timestamp()
    cid = to_wire_hex(compute_commit_id([], "sha256:" + snapshot, "m", stamp))
    commit = {"commit_id": cid, "parent_commit_id": None, "parent2_commit_id": None, "snapshot_id": snapshot,
              "branch": "main", "message": "m", "author": "a", "committed_at": stamp, "structured_delta": MARKER}  # fmt: skip
    body = {
        "bundle": {
            "commits": [commit],
            "snapshots": [{"snapshot_id": snapshot, "manifest": manifest, "created_at": stamp}],
            "objects": [{"object_id": manifest["a.txt"], "content": b"a"}],
        },
        "branch": "main",
        "force": False,
    }
    return with_deep(msgpack.packb(body, use_bin_type=True), levels), cid


@pytest.mark.parametrize("levels", [MAX_FIELD_DEPTH + 1, MAX_BODY_DEPTH, 950, 2_000])
def test_mwp_push_with_a_deep_commit_field_is_422(user, levels):
    caller = WireCaller(token_for(user), native=False)
    body, cid = mwp_push_body(levels)
    before = row_counts()
    reply = caller.post(f"/{user.username}/mwp-{uid()}/push", raw=body)
    assert reply.status == 422, (reply.status, reply.content[:300])
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.data["error"] == "malformed_pack" and f"{MAX_FIELD_DEPTH} levels" in reply.data["detail"]
    if levels + 4 <= MAX_BODY_DEPTH:  # the body was read: the commit is named
        assert "commits[0]" in reply.data["detail"] and cid in reply.data["detail"]
    assert row_counts() == before


def test_mwp_push_at_the_field_limit_is_stored(user):
    caller = WireCaller(token_for(user), native=False)
    body, cid = mwp_push_body(MAX_FIELD_DEPTH)
    reply = caller.post(f"/{user.username}/mwp-{uid()}/push", raw=body)
    assert reply.status == 200 and reply.data["ok"] is True, reply.content[:300]
    assert Commit.objects.get(commit_id="sha256:" + cid).metadata["structured_delta"] == deep_value(MAX_FIELD_DEPTH)


# --- zstd bombs and big blobs: bounded memory -------------------------------------------------------


def zeros_zstd(mib: int) -> tuple[bytes, str]:
    """Return (zstd frame of *mib* MiB of zeros, its blob id), compressed 1 MiB at a time."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    digest, out, chunk = hashlib.sha256(), io.BytesIO(), bytes(MIB)
    for _ in range(mib):
        out.write(compressor.compress(chunk))
        digest.update(chunk)
    out.write(compressor.flush())
    return out.getvalue(), "sha256:" + digest.hexdigest()


def blob_pack(object_id: str, content: bytes) -> bytes:
    blob = {"object_id": object_id, "content": content, "encoding": "zstd"}
    return msgpack.packb({"commits": [], "snapshots": [], "blobs": [blob], "branch_heads": {}}, use_bin_type=True)


# Runs in a fresh interpreter (no Django): builds the pack streaming, reads it, reports peak RSS in MiB.
PROBE = """
import hashlib, io, json, resource, sys
import msgpack, zstandard
from musehub_core.errors import MalformedPack
from musehub_core.mpack import PackLimits, decode_verified, index_mpack, verify_blob
MIB = 1024 * 1024
MIB_OF_ZEROS, HONEST = int(sys.argv[1]), sys.argv[2] == "honest"


def peak():
    # This process's own high-water RSS in MiB. ru_maxrss would also count the pytest worker this
    # interpreter was forked from (Linux folds the pre-exec image into it), so read VmHWM when there is one.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux


{helpers}
frame, real_id = zeros_zstd(MIB_OF_ZEROS)
baseline = peak()
claimed = real_id if HONEST else "sha256:" + "0" * 64
data = blob_pack(claimed, frame)
report = {{"baseline_mib": baseline, "frame_bytes": len(frame), "steps": {{}}}}
report["steps"]["verify_blob"] = [verify_blob(claimed, frame, "zstd"), peak()]
if not HONEST:
    report["steps"]["decode_verified"] = [decode_verified(claimed, frame, "zstd") is None, peak()]
steps = [("verify", {{}}), ("keep small", {{"keep_content_up_to": 65536}})]
if not HONEST:  # asking for an honest blob's bytes holds them all: that is the point (tested in-process at 20 MiB)
    steps.append(("keep id", {{"keep_ids": {{claimed}}}}))
for name, kwargs in steps:
    try:
        blob = index_mpack(io.BytesIO(data), limits=PackLimits(max_blob_bytes=2**30), **kwargs).blobs[0]
        result = ["accepted", blob.size, blob.content is not None]
    except MalformedPack as exc:
        result = ["refused", str(exc)]
    report["steps"][name] = [*result, peak()]
print(json.dumps(report))
"""


def probe(mib: int, *, honest: bool) -> dict:
    helpers = inspect.getsource(zeros_zstd) + "\n\n" + inspect.getsource(blob_pack)
    script = PROBE.format(helpers=helpers)
    argv = [sys.executable, "-c", script, str(mib), "honest" if honest else "bomb"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_small(report: dict) -> None:
    for name, step in report["steps"].items():
        assert step[-1] < 150, f"{name}: peak RSS {step[-1]} MiB ({report})"
        assert step[-1] - report["baseline_mib"] < 64, f"{name}: grew {step[-1] - report['baseline_mib']} MiB"


def test_zstd_bomb_is_refused_in_bounded_memory():
    report = probe(600, honest=False)
    assert report["frame_bytes"] < 4 * MIB, "the test itself never held the 600 MiB"
    for name in ("verify", "keep id"):
        assert report["steps"][name][:2] == ["refused", "blobs[0]: content does not hash to its object id " +
                                             "sha256:" + "0" * 64 + "."], report  # fmt: skip
    assert report["steps"]["verify_blob"][0] is False and report["steps"]["decode_verified"][0] is True
    assert_small(report)


def test_big_legitimate_blob_verifies_in_bounded_memory():
    report = probe(300, honest=True)
    assert report["steps"]["verify"][:3] == ["accepted", 300 * MIB, False]
    assert report["steps"]["keep small"][:3] == ["accepted", 300 * MIB, False]
    assert report["steps"]["verify_blob"][0] is True
    assert_small(report)


def test_zstd_bomb_push_is_422(caller, repo_path, settings):
    settings.MUSEHUB_MAX_BLOB_BYTES = 1024 * MIB  # only the hash check stands in the bomb's way
    frame, _ = zeros_zstd(600)
    data = blob_pack("sha256:" + "0" * 64, frame)
    before = row_counts()
    slot = caller.post(f"{repo_path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert caller.put_url(slot.data["upload_url"], data).status == 200
    reply = caller.post(
        f"{repo_path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": "main", "head_commit_id": "", "commits_count": 0, "blobs_count": 1},
    )
    assert reply.status == 422 and "does not hash to its object id" in reply.data["detail"], reply.content[:300]
    assert row_counts() == before


# --- the streaming decode keeps every caller's contract ---------------------------------------------


@pytest.mark.parametrize("size", [0, 100, 70_000, 20 * MIB])
def test_kept_and_verified_content_is_unchanged(size):
    raw = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    oid = blob_id(raw)
    frame = zstandard.ZstdCompressor(level=3).compress(raw)
    assert decode_verified(oid, frame, "zstd") == raw and decode_verified(oid, raw, "") == raw
    assert decode_verified(blob_id(b"other"), frame, "zstd") is None and decode_verified(oid, b"junk", "zstd") is None
    assert verify_blob(oid, frame, "zstd") and not verify_blob(blob_id(b"other"), frame, "zstd")
    data = blob_pack(oid, frame)
    for kwargs, kept in [({}, None), ({"keep_content_up_to": size}, raw), ({"keep_content_up_to": size - 1}, None),
                         ({"keep_ids": {oid}}, raw), ({"keep_ids": {oid}, "verify": False}, raw)]:  # fmt: skip
        blob = index_mpack(io.BytesIO(data), **kwargs).blobs[0]
        assert (blob.size, blob.content) == (size, kept), kwargs
    if size:
        with pytest.raises(MalformedPack, match="decompresses to more than"):
            index_mpack(io.BytesIO(data), limits=PackLimits(max_blob_bytes=size - 1))
    wrong = blob_pack(blob_id(b"other"), frame)
    assert index_mpack(io.BytesIO(wrong), verify=False, keep_ids={blob_id(b"other")}).blobs[0].content == raw
