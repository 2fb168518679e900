"""Issue 25 (review): a zstd frame asking for a window over MAX_WINDOW_BYTES is refused at push, never decoded.

zstd lets a frame ask its reader for up to 128 MiB of window; a stored blob is decoded on every
download, so a crafted frame could make each anonymous download allocate that much.
"""

from __future__ import annotations

import os

import pytest
import zstandard

from musehub_core.errors import MalformedPack
from musehub_core.ids import blob_id
from musehub_core.mpack import MAX_WINDOW_BYTES, build_wire_mpack, decode_blob, decode_verified, encode_blob
from tests.factories import History, make_user, uid
from tests.httpkit import WireCaller, token_for
from tests.test_hostile_input import push_raw

pytestmark = pytest.mark.django_db


def framed(raw: bytes, window_log: int) -> bytes:
    """A frame declaring a 2**window_log window (streamed: with a known size zstd would shrink the window to fit)."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=window_log)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()
    return stream.compress(raw) + stream.flush()


RAW = os.urandom(64 * 1024) * 40  # 2.5 MiB: decoded as a stream, past the one-call size


def test_a_frame_within_the_window_decodes_and_a_wider_one_is_malformed():
    assert MAX_WINDOW_BYTES == 1 << 23
    assert decode_blob(framed(RAW, 23), "zstd", max_bytes=len(RAW)) == RAW
    wide = framed(RAW, 27)
    assert zstandard.get_frame_parameters(wide).window_size > MAX_WINDOW_BYTES
    with pytest.raises(MalformedPack, match="zstd"):
        decode_blob(wide, "zstd", max_bytes=len(RAW))
    assert decode_verified(blob_id(RAW), wide, "zstd") is None


def test_a_push_holding_a_wide_window_frame_is_422_and_an_ordinary_one_is_kept():
    user = make_user(f"z-{uid()}")
    caller, path = WireCaller(token_for(user)), f"/{user.username}/zstd-{uid()}"
    history = History()
    commit = history.commit({"take.wav": RAW})
    oid = blob_id(RAW)

    def pack(content: bytes, encoding: str) -> bytes:
        entry = {"object_id": oid, "content": content, "encoding": encoding}
        return build_wire_mpack({"commits": history.commits, "snapshots": history.snapshots, "blobs": [entry]})

    refused = push_raw(caller, path, pack(framed(RAW, 27), "zstd"), commit)
    assert refused.status == 422, refused.content
    assert caller.get(f"{path}/refs").status in (404, 200) and not caller.get(f"{path}/refs").data.get("branches")
    kept = push_raw(caller, path, pack(*encode_blob(RAW, min_size=0, min_saving=-10)), commit)
    assert kept.status == 200, kept.content
