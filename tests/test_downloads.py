"""Raw downloads (issue 25): files stream in bounded chunks, verified as they go, and answer Range; active types
never render on the hub's origin, only on the operator's raw origin.

No mocks: real packs in filesystem storage or in the S3 endpoint (moto), storage faults through
``tests.faultkit.FaultProxy``, a damaged pack made by changing a byte of the stored file.
"""

from __future__ import annotations

import json
import random

import pytest
from django.test import Client

from musehub_core.errors import IntegrityError, StorageUnavailable
from musehub_core.ids import blob_id
from repos.models import MPack, MPackIndex
from repos.storage.backend import get_backend, record_storage_ops
from repos.storage.blobstream import CHUNK
from repos.storage.layout import mpack_name
from tests.conftest import _use_mpack_storage
from tests.factories import History, make_repo, make_user, push_history, uid
from tests.faultkit import FaultProxy, proxied_s3_storages

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024


def some_bytes(size: int, seed: int = 0) -> bytes:
    """Half random, half repeated text: zstd shrinks it, and every range of it is distinct."""
    noise = random.Random(seed).randbytes(size // 2)
    text = b"".join(b"bar %08d of the verse\n" % i for i in range(size // 20 + 1))
    return (noise + text)[:size]


def chunks_of(reply) -> list[bytes]:
    assert reply.streaming, "a download is a streaming reply"
    return list(reply.streaming_content)


def raw_base(files: dict[str, bytes], *, zstd: bool = False, repo=None) -> str:
    """Push one commit of *files* to a public repository; return the URL prefix of its raw files on main."""
    repo = repo or make_repo(make_user(f"raw-{uid()}"))
    history = History()
    history.commit(files)
    push_history(repo, history, zstd=zstd)
    return f"/api/v1/repos/{repo.owner}/{repo.slug}/raw/main/"


def assert_sandboxed(reply) -> None:
    assert reply["X-Content-Type-Options"] == "nosniff"
    assert reply["Content-Security-Policy"] == "sandbox; default-src 'none'"


# --- streaming --------------------------------------------------------------------------------------


@pytest.mark.parametrize("zstd", [False, True], ids=["raw", "zstd"])
def test_a_big_file_streams_in_bounded_chunks_from_one_ranged_read(backend, zstd):
    data = some_bytes(3 * MiB + 4321)
    base = raw_base({"take.wav": data}, zstd=zstd)
    entry = MPackIndex.objects.get(entity_id=blob_id(data))

    with record_storage_ops() as ops:
        reply = Client().get(base + "take.wav")
        chunks = chunks_of(reply)

    assert reply.status_code == 200
    assert b"".join(chunks) == data
    assert len(chunks) > 3 and all(len(c) <= CHUNK for c in chunks), [len(c) for c in chunks]
    assert reply["Content-Length"] == str(len(data)) and reply["Accept-Ranges"] == "bytes"
    assert reply["ETag"] == f'"{blob_id(data)}"'
    assert_sandboxed(reply)
    assert [(op.op, op.nbytes) for op in ops] == [("get_range", entry.length)], "the blob's bytes, read once"


def test_a_cached_file_is_served_from_its_row_without_a_storage_read(settings):
    settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES = 4096
    base = raw_base({"lyrics.txt": b"la la la\n" * 100})
    with record_storage_ops() as ops:
        whole = Client().get(base + "lyrics.txt")
        part = Client().get(base + "lyrics.txt", headers={"Range": "bytes=3-5"})
        assert b"".join(chunks_of(whole)) == b"la la la\n" * 100 and b"".join(chunks_of(part)) == b"la "
    assert whole["Content-Type"] == "text/plain; charset=utf-8" and part.status_code == 206
    assert ops == []


def test_storage_down_before_a_download_is_a_json_503(settings, s3_endpoint, tmp_path):
    data = some_bytes(600_000)
    proxy = FaultProxy(s3_endpoint)
    try:
        _use_mpack_storage(settings, proxied_s3_storages(proxy, f"t-{tmp_path.name}"))
        base = raw_base({"take.wav": data})
        proxy.stop()
        reply = Client().get(base + "take.wav")
        assert reply.status_code == 503 and not reply.streaming
        assert reply["Retry-After"] == "5"
        assert json.loads(reply.content)["error"] == "storage_unavailable"

        proxy.pass_through()
        assert b"".join(chunks_of(Client().get(base + "take.wav"))) == data
    finally:
        proxy.close()


def test_storage_dying_mid_download_cuts_the_reply_short(settings, s3_endpoint, tmp_path):
    data = some_bytes(2 * MiB)
    proxy = FaultProxy(s3_endpoint)
    try:
        _use_mpack_storage(settings, proxied_s3_storages(proxy, f"t-{tmp_path.name}"))
        base = raw_base({"take.wav": data})
        proxy.cut_after(CHUNK * 2 + 1000, methods={"GET"})
        reply = Client().get(base + "take.wav")
        assert reply.status_code == 200 and reply["Content-Length"] == str(len(data))
        received = b""
        with pytest.raises(StorageUnavailable):
            for chunk in reply.streaming_content:
                received += chunk
        assert 0 < len(received) < len(data) and data.startswith(received)
    finally:
        proxy.close()


def _damage_copy(mpack_id: str, object_id: str, position: int) -> None:
    """Flip one byte of *object_id*'s stored bytes in pack *mpack_id* (filesystem storage), *position* from its start."""
    entry = MPackIndex.objects.get(entity_id=object_id, mpack_id=mpack_id)
    path = get_backend().path_for(mpack_name(mpack_id))
    with open(path, "r+b") as handle:
        handle.seek(entry.offset + position)
        byte = handle.read(1)
        handle.seek(entry.offset + position)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_a_copy_that_does_not_hash_to_its_id_is_cut_before_its_last_chunk_and_the_retry_takes_another(caplog):
    data = some_bytes(MiB + 1000)
    oid = blob_id(data)
    base = raw_base({"take.wav": data})
    raw_base({"take.wav": data})  # a second repository pushes the same file: a second copy, in its own pack
    first, second = sorted(MPackIndex.objects.filter(entity_id=oid).values_list("mpack_id", flat=True))
    _damage_copy(first, oid, len(data) - 1)  # the copy read first; its last byte is wrong

    reply = Client().get(base + "take.wav")
    assert reply.status_code == 200 and reply["Content-Length"] == str(len(data))
    stream = iter(reply.streaming_content)
    received = next(stream)
    assert received == data[:CHUNK], "the reply began before the blob's end was read"
    with pytest.raises(IntegrityError):
        for chunk in stream:
            received += chunk
    assert len(received) < len(data) and data.startswith(received), "stopped short of Content-Length"
    assert MPack.objects.get(mpack_id=first).damaged_at is not None
    assert f"download of {oid} from mpack {first} stopped" in caplog.text

    retry = Client().get(base + "take.wav")
    assert retry.status_code == 200 and b"".join(chunks_of(retry)) == data
    assert MPack.objects.get(mpack_id=second).damaged_at is None


def test_a_small_wrong_copy_is_found_before_the_reply_starts():
    data = b"a short riff\n" * 100
    base = raw_base({"riff.txt": data})
    (mpack_id,) = MPackIndex.objects.filter(entity_id=blob_id(data)).values_list("mpack_id", flat=True)
    _damage_copy(mpack_id, blob_id(data), 5)

    reply = Client().get(base + "riff.txt")
    assert reply.status_code == 500 and not reply.streaming
    assert json.loads(reply.content)["error"] == "integrity_error"
    assert MPack.objects.get(mpack_id=mpack_id).damaged_at is not None


# --- Range ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zstd", [False, True], ids=["raw", "zstd"])
def test_one_range_is_answered_206_in_bounded_chunks(zstd):
    data = some_bytes(MiB + 12345, seed=1)
    n = len(data)
    base = raw_base({"take.wav": data}, zstd=zstd)
    etag = f'"{blob_id(data)}"'
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=1000-": (1000, n - 1),
        "bytes=-500": (n - 500, n - 1),
        "bytes=300000-700000": (300_000, 700_000),
        "bytes=5-99999999": (5, n - 1),
        f"bytes=-{n + 10}": (0, n - 1),
    }
    for header, (first, last) in cases.items():
        with record_storage_ops() as ops:
            reply = Client().get(base + "take.wav", headers={"Range": header})
            chunks = chunks_of(reply)
        assert reply.status_code == 206, header
        assert b"".join(chunks) == data[first : last + 1], header
        assert all(len(c) <= CHUNK for c in chunks), header
        assert reply["Content-Range"] == f"bytes {first}-{last}/{n}", header
        assert reply["Content-Length"] == str(last - first + 1)
        assert reply["ETag"] == etag and reply["Accept-Ranges"] == "bytes"
        assert_sandboxed(reply)
        if not zstd:
            assert [(op.op, op.nbytes) for op in ops] == [("get_range", last - first + 1)], "only the range is read"


def test_a_range_past_the_end_is_416_and_what_cannot_be_honoured_is_the_whole_file():
    data = some_bytes(50_000)
    base = raw_base({"take.wav": data})
    etag = f'"{blob_id(data)}"'
    for header in (f"bytes={len(data)}-", "bytes=-0", f"bytes={len(data) + 5}-{len(data) + 9}"):
        reply = Client().get(base + "take.wav", headers={"Range": header})
        assert reply.status_code == 416, header
        assert reply["Content-Range"] == f"bytes */{len(data)}"
        assert json.loads(reply.content)["error"] == "range_not_satisfiable"
    # Several ranges, a malformed header, another unit, or an If-Range for another version: the whole file.
    for headers in (
        {"Range": "bytes=0-9,20-29"},
        {"Range": "bytes=9-3"},
        {"Range": "lines=1-2"},
        {"Range": "bytes=" + "1" * 5000 + "-"},  # too many digits for any offset (and for int() without a limit)
        {"Range": "bytes=\u0663-"},  # an Arabic-Indic digit is not a digit of HTTP
        {"Range": "bytes=0-9", "If-Range": f'"{blob_id(b"older")}"'},
        {"Range": "bytes=0-9", "If-Range": "Wed, 21 Oct 2026 07:28:00 GMT"},
    ):
        reply = Client().get(base + "take.wav", headers=headers)
        assert reply.status_code == 200 and b"".join(chunks_of(reply)) == data, headers
        assert reply["Accept-Ranges"] == "bytes"
    honoured = Client().get(base + "take.wav", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert honoured.status_code == 206 and b"".join(chunks_of(honoured)) == data[:10]


def test_head_answers_the_size_without_reading_the_bytes():
    data = some_bytes(300_000)
    base = raw_base({"take.wav": data})
    with record_storage_ops() as ops:
        reply = Client().head(base + "take.wav")
        ranged = Client().head(base + "take.wav", headers={"Range": "bytes=-100"})
    assert reply.status_code == 200 and reply.content == b""
    assert reply["Content-Length"] == str(len(data)) and reply["Accept-Ranges"] == "bytes"
    assert (
        ranged.status_code == 206 and ranged["Content-Range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    )
    assert ops == []


def test_an_etag_match_is_still_304_without_a_storage_read():
    data = some_bytes(100_000)
    base = raw_base({"take.wav": data})
    with record_storage_ops() as ops:
        reply = Client().get(base + "take.wav", headers={"If-None-Match": f'"{blob_id(data)}"', "Range": "bytes=0-9"})
    assert reply.status_code == 304 and ops == []


# --- active types -----------------------------------------------------------------------------------

PAGE = b'<html><body><h1>Sign in to MuseHub</h1><form action="https://evil.example"></form></body></html>'
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="4" height="4"/></svg>'
FILES = {
    "site/index.html": PAGE,
    "art/logo.svg": SVG,
    "feed.xml": b"<?xml version='1.0'?><rss/>",
    "page.xhtml": PAGE,
    "play.js": b"alert(document.cookie)",
    "style.css": b"body { color: red }",
    "score.pdf": b"%PDF-1.7\n\x00\xff\xfe binary",
    "latin1.html": "<p>caf\xe9</p>".encode("latin-1"),
    "notes.txt": b"just notes\n",
    "cover.png": b"\x89PNG\r\n\x1a\n" + bytes(range(64)),
}


def test_active_types_are_plain_text_or_attachments_on_the_hubs_origin():
    base = raw_base(FILES)
    expected = {
        "site/index.html": ("text/plain; charset=utf-8", "inline"),
        "art/logo.svg": ("text/plain; charset=utf-8", "inline"),
        "feed.xml": ("text/plain; charset=utf-8", "inline"),
        "page.xhtml": ("text/plain; charset=utf-8", "inline"),
        "play.js": ("text/plain; charset=utf-8", "inline"),
        "style.css": ("text/plain; charset=utf-8", "inline"),
        "score.pdf": ("application/octet-stream", "attachment"),
        "latin1.html": ("application/octet-stream", "attachment"),
        "notes.txt": ("text/plain; charset=utf-8", "inline"),
        "cover.png": ("image/png", "inline"),
    }
    for path, (content_type, disposition) in expected.items():
        reply = Client().get(base + path)
        assert reply.status_code == 200, path
        assert (reply["Content-Type"], reply["Content-Disposition"].split(";")[0]) == (content_type, disposition), path
        assert path.rsplit("/", 1)[-1] in reply["Content-Disposition"]
        assert b"".join(chunks_of(reply)) == FILES[path]
        assert_sandboxed(reply)
    # A range of an active file has the type of the whole file.
    ranged = Client().get(base + "site/index.html", headers={"Range": "bytes=-20"})
    assert ranged.status_code == 206 and ranged["Content-Type"] == "text/plain; charset=utf-8"


def test_an_svg_an_img_asks_for_is_an_image_and_the_reply_varies_on_it():
    base = raw_base({"art/logo.svg": SVG})
    image = Client().get(base + "art/logo.svg", headers={"Sec-Fetch-Dest": "image"})
    page = Client().get(base + "art/logo.svg", headers={"Sec-Fetch-Dest": "document"})
    assert image["Content-Type"] == "image/svg+xml" and page["Content-Type"] == "text/plain; charset=utf-8"
    assert all("Sec-Fetch-Dest" in reply["Vary"].split(", ") for reply in (image, page))
    assert_sandboxed(image)


def test_the_raw_origin_serves_active_types_as_themselves_still_sandboxed(settings):
    settings.MUSEHUB_RAW_URL = "https://raw.hub-usercontent.test"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "raw.hub-usercontent.test"]
    base = raw_base(FILES)
    there = Client().get(base + "site/index.html", HTTP_HOST="raw.hub-usercontent.test")
    assert there.status_code == 200 and there["Content-Type"] == "text/html; charset=utf-8"
    assert there["Content-Disposition"].startswith("inline")
    assert_sandboxed(there)
    svg = Client().get(base + "art/logo.svg", HTTP_HOST="raw.hub-usercontent.test")
    assert svg["Content-Type"] == "image/svg+xml"
    here = Client().get(base + "site/index.html")
    assert here["Content-Type"] == "text/plain; charset=utf-8", "the hub's own origin still never renders it"
