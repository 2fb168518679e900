"""Malformed input of every kind gets a 4xx with a message and changes nothing."""

from __future__ import annotations

import msgpack
import pytest
import zstandard

from musehub_core.ids import blob_id, compute_commit_id, compute_snapshot_id
from tests.factories import History, make_user, timestamp, uid
from tests.httpkit import WireCaller, row_counts, token_for
from tests.test_http_api import http_push

pytestmark = pytest.mark.django_db

ENDPOINTS = ["refs", "filter-objects", "mpack/upload", "mpack/push", "mpack/fetch"]
BAD_BODIES = {
    "garbage bytes": b"\xc1\xff\x00garbage",
    "truncated msgpack": msgpack.packb({"mpack_key": "sha256:" + "a" * 64, "size": 10})[:-3],
    "a list instead of a map": msgpack.packb([1, 2, 3]),
    "wrong types": msgpack.packb({"mpack_key": 5, "size": "big", "want": "x", "have": 7, "object_ids": "x",
                                  "commits_count": [], "blobs_count": {}, "branch": 9}),
    "missing fields": msgpack.packb({}),
    "huge counts": msgpack.packb({"mpack_key": "sha256:" + "b" * 64, "size": 10**18, "commits_count": 10**15,
                                  "blobs_count": 10**15, "want": ["sha256:" + "c" * 64] * 20_000}),
}  # fmt: skip


@pytest.fixture
def setup():
    user = make_user(f"m-{uid()}")
    caller = WireCaller(token_for(user))
    path = f"/{user.username}/target"
    history = History()
    history.commit({"ok.txt": b"fine"})
    assert http_push(caller, path, history).status == 200
    return caller, path


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e != "refs"])
def test_bad_bodies_are_4xx_with_a_message(setup, endpoint, kind):
    caller, path = setup
    before = row_counts()
    reply = caller.post(f"{path}/{endpoint}", raw=BAD_BODIES[kind])
    assert 400 <= reply.status < 500, (reply.status, reply.content[:300])
    assert reply.data["detail"], "the error names what is wrong"
    assert row_counts() == before


def _push_pack(caller, path, data: bytes, *, commits: int, blobs: int, head: str = ""):
    slot = caller.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert slot.status == 200, slot.content
    assert caller.put_url(slot.data["upload_url"], data).status == 200
    return caller.post(
        f"{path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": "main", "head_commit_id": head, "commits_count": commits,
         "blobs_count": blobs},
    )  # fmt: skip


def test_zstd_bomb_is_refused(setup, settings):
    settings.MUSEHUB_MAX_BLOB_BYTES = 1024 * 1024
    caller, path = setup
    bomb = zstandard.ZstdCompressor(level=3).compress(b"\0" * (64 * 1024 * 1024))
    data = msgpack.packb(
        {
            "commits": [],
            "snapshots": [],
            "blobs": [{"object_id": "sha256:" + "d" * 64, "content": bomb, "encoding": "zstd"}],
        },
        use_bin_type=True,
    )
    before = row_counts()
    reply = _push_pack(caller, path, data, commits=0, blobs=1)
    assert reply.status == 422 and "decompresses to more than" in reply.data["detail"]
    assert row_counts() == before


@pytest.mark.parametrize("bad_path", ["../etc/passwd", "/abs", "a/../../b", "a//b", "a\\b", "./a"])
def test_escaping_manifest_paths_are_refused(setup, bad_path):
    caller, path = setup
    content = b"x"
    manifest = {bad_path: blob_id(content)}
    snapshot_id = compute_snapshot_id(manifest)
    stamp = timestamp()
    commit = {"commit_id": compute_commit_id([], snapshot_id, "m", stamp), "parent_ids": [], "snapshot_id": snapshot_id,
              "branch": "main", "message": "m", "author": "a", "committed_at": stamp}  # fmt: skip
    data = msgpack.packb(
        {"commits": [commit], "snapshots": [{"snapshot_id": snapshot_id, "manifest": manifest}],
         "blobs": [{"object_id": blob_id(content), "content": content}]},
        use_bin_type=True,
    )  # fmt: skip
    before = row_counts()
    reply = _push_pack(caller, path, data, commits=1, blobs=1, head=commit["commit_id"])
    assert reply.status == 422 and "manifest path" in reply.data["detail"]
    assert row_counts() == before


def test_truncated_pack_is_refused(setup):
    caller, path = setup
    history = History()
    history.commit({"a": b"a" * 100})
    from tests.factories import build_pack

    data = build_pack(history.commits, history.snapshots, history.blobs)[:-20]
    before = row_counts()
    reply = _push_pack(caller, path, data, commits=1, blobs=1, head=history.commits[0]["commit_id"])
    assert reply.status == 422 and "truncated" in reply.data["detail"]
    assert row_counts() == before


def test_fetch_of_unknown_commit_is_404(setup):
    caller, path = setup
    reply = caller.post(f"{path}/mpack/fetch", {"want": ["sha256:" + "e" * 64], "have": []})
    assert reply.status == 404 and "is not in" in reply.data["detail"]
