"""Object storage failing: every failure is a 503 StorageUnavailable (Retry-After), never a 500 or a hang.

No mocks: the hub talks to the real S3 endpoint (moto's server) through
``tests.faultkit.FaultProxy``, a TCP proxy that refuses, hangs, cuts responses
off mid-body, slows them down or answers S3 errors, as a failing MinIO would.
Each test also checks that nothing was half-written (rows, branch heads,
storage keys) and, where it matters, that the client's retry then succeeds.
"""

from __future__ import annotations

import json
import random
import time
from io import StringIO

import boto3
import msgpack
import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError

from musehub_core.errors import StorageUnavailable
from musehub_core.ids import blob_id, fake_id
from repos.models import Branch, MPack, MPackKind, MPackUpload
from repos.storage.backend import StorageStream, get_backend, record_storage_ops
from tests.conftest import S3_BUCKET, S3_KEYS, _use_mpack_storage
from tests.deploykit import django_process
from tests.factories import History, build_pack, make_repo, make_user, push_history, stage_mpack, uid
from tests.faultkit import FaultProxy, proxied_s3_storages
from tests.httpkit import WireCaller, row_counts, token_for
from wire.fetch import wire_fetch_mpack
from wire.push import wire_push_unpack_mpack

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024
STREAM_FAILURES = {"ResponseStreamingError", "IncompleteReadError", "ProtocolError", "IncompleteRead"}


@pytest.fixture
def proxy(s3_endpoint):
    proxy = FaultProxy(s3_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def prefix(tmp_path) -> str:
    return f"t-{tmp_path.name}"


@pytest.fixture
def store(settings, proxy, prefix):
    """The hub's store over the test bucket, reached through the fault proxy (2 attempts, short timeouts)."""
    _use_mpack_storage(settings, proxied_s3_storages(proxy, prefix))
    return get_backend()


@pytest.fixture
def stored_keys(s3_endpoint, prefix):
    """Return a function listing this test's keys straight from the S3 endpoint (not through the proxy)."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEYS["access_key"],
        aws_secret_access_key=S3_KEYS["secret_key"],
    )

    def keys() -> set[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=f"{prefix}/")
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    return keys


@pytest.fixture
def alice():
    user = make_user(f"alice-{uid()}")
    return user, WireCaller(token_for(user))


def state(stored_keys) -> dict:
    """Everything a failed request must leave as it was: content rows, branch heads, upload slots, storage keys."""
    return {
        "rows": row_counts(),
        "heads": sorted(Branch.objects.values_list("repo_id", "name", "head_commit_id")),
        "uploads": sorted(str(pk) for pk in MPackUpload.objects.values_list("pk", flat=True)),
        "keys": stored_keys(),
    }


def assert_storage_503(reply) -> dict:
    """Check a reply is the JSON 503 of StorageUnavailable with Retry-After; return its body."""
    assert reply.status == 503, reply.content
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["Retry-After"] == "5"
    body = json.loads(reply.content)
    assert body["error"] == "storage_unavailable"
    assert body["detail"].startswith("Object storage is unavailable: could not ")
    assert "127.0.0.1" not in body["detail"], "no storage address in a reply to clients"
    return body


def random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def push(repo, key: str, history: History, mpack: bytes | None = None) -> dict:
    return wire_push_unpack_mpack(
        repo,
        key,
        "gabriel",
        branch="main",
        head_commit_id=history.commits[-1]["commit_id"],
        commits_count=len(history.commits),
        blobs_count=len(history.blobs),
        mpack=mpack,
    )


def http_push(caller: WireCaller, repo, key: str, history: History):
    return caller.post(
        f"/{repo.owner}/{repo.slug}/mpack/push",
        {"mpack_key": key, "branch": "main", "head_commit_id": history.commits[-1]["commit_id"], "force": False,
         "commits_count": len(history.commits), "blobs_count": len(history.blobs)},
        headers={"Accept": "application/json"},
    )  # fmt: skip


def http_fetch(caller: WireCaller, repo, want: str):
    return caller.post(
        f"/{repo.owner}/{repo.slug}/mpack/fetch", {"want": [want], "have": []}, headers={"Accept": "application/json"}
    )


# --- push -------------------------------------------------------------------------------------------


def test_push_while_storage_is_stopped_is_a_503_and_writes_nothing(store, proxy, stored_keys, alice):
    user, caller = alice
    repo = make_repo(owner=user)
    history = History()
    history.commit({"a.txt": b"hello", "b.bin": random_bytes(20_000)})
    key = stage_mpack(repo, build_pack(history.commits, history.snapshots, history.blobs))
    before = state(stored_keys)

    proxy.stop()
    assert_storage_503(http_push(caller, repo, key, history))
    assert state(stored_keys) == before, "nothing written; the upload slot is kept for the retry"

    proxy.pass_through()
    reply = http_push(caller, repo, key, history)
    assert reply.status == 200 and json.loads(reply.content)["ok"] is True, "the client's retry goes through"


def test_push_whose_pack_stream_breaks_mid_read_is_a_503_and_writes_nothing(store, proxy, stored_keys):
    repo = make_repo()
    history = History()
    history.commit({"big.bin": random_bytes(2 * MiB), "small.txt": b"small"})
    key = stage_mpack(repo, build_pack(history.commits, history.snapshots, history.blobs))
    before = state(stored_keys)

    proxy.cut_after(100_000, methods={"GET"})  # index_mpack is reading the upload when the connection drops
    with pytest.raises(StorageUnavailable) as caught:
        push(repo, key, history)
    assert type(caught.value.__cause__).__name__ in STREAM_FAILURES, repr(caught.value.__cause__)
    assert "could not read an upload" in caught.value.message
    assert state(stored_keys) == before

    proxy.pass_through()
    assert push(repo, key, history)["ok"] is True
    assert Branch.objects.get(repo=repo, name="main").head_commit_id == history.commits[-1]["commit_id"]


def test_push_whose_move_to_the_content_key_fails_commits_nothing(store, proxy, stored_keys):
    """The move runs beside the inserts; its failure rolls them back, so no row names a key that holds nothing."""
    repo = make_repo()
    history = History()
    history.commit({"a.bin": random_bytes(300_000), "b.txt": b"b"})
    key = stage_mpack(repo, build_pack(history.commits, history.snapshots, history.blobs))
    before = state(stored_keys)

    proxy.answer_error(methods={"PUT"})  # the pack is read (GET), then its server-side copy (a PUT) is refused
    with pytest.raises(StorageUnavailable) as caught:
        push(repo, key, history)
    assert "could not store an uploaded mpack" in caught.value.message
    assert state(stored_keys) == before, "no rows, no branch move; the staged upload stays for the retry"
    assert not MPack.objects.filter(mpack_id=key).exists()

    proxy.pass_through()
    assert push(repo, key, history)["ok"] is True
    assert MPack.objects.filter(mpack_id=key).exists() and get_backend().mpack_exists(key)
    assert Branch.objects.get(repo=repo, name="main").head_commit_id == history.commits[-1]["commit_id"]


def test_an_inline_push_whose_store_fails_commits_nothing_and_stores_on_the_retry(store, proxy, stored_keys):
    """An inline pack is stored on the storage thread beside the inserts; a refused PUT rolls them back (503)."""
    repo = make_repo()
    history = History()
    history.commit({"a.bin": random_bytes(300_000), "b.txt": b"b"})
    data = build_pack(history.commits, history.snapshots, history.blobs)
    key = blob_id(data)
    before = state(stored_keys)

    proxy.answer_error(methods={"PUT"})
    with pytest.raises(StorageUnavailable) as caught:
        push(repo, key, history, mpack=data)
    assert "could not store an mpack" in caught.value.message
    assert state(stored_keys) == before, "no rows, no branch move, nothing stored"
    assert not MPack.objects.filter(mpack_id=key).exists() and not MPackUpload.objects.exists()

    proxy.pass_through()
    assert push(repo, key, history, mpack=data)["ok"] is True
    assert get_backend().get_mpack(key) == data, "stored under its key once verified"
    assert Branch.objects.get(repo=repo, name="main").head_commit_id == history.commits[-1]["commit_id"]


def test_slow_storage_that_keeps_sending_is_not_a_failure(settings, proxy, prefix):
    """The read timeout bounds each silence, not a whole transfer: a slow pack read still succeeds."""
    _use_mpack_storage(settings, proxied_s3_storages(proxy, prefix, read_timeout=1))
    repo = make_repo()
    history = History()
    history.commit({"big.bin": random_bytes(MiB)})
    key = stage_mpack(repo, build_pack(history.commits, history.snapshots, history.blobs))
    proxy.throttle(512 * 1024)  # the pack takes about 2 s to read, twice the read timeout
    started = time.monotonic()
    assert push(repo, key, history)["ok"] is True
    assert time.monotonic() - started > 1.5


# --- fetch ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("read", ["whole pack", "byte ranges"])
def test_fetch_whose_pack_read_breaks_mid_stream_is_a_503(store, proxy, stored_keys, alice, read):
    user, caller = alice
    repo = make_repo(owner=user)
    history = History()
    small = history.commit({"mid.bin": random_bytes(300_000)})
    both = history.commit(
        {"mid.bin": random_bytes(300_000), "big.bin": random_bytes(2 * MiB)}, parents=[small["commit_id"]]
    )
    push_history(repo, history)  # one pack holds both commits
    want = both if read == "whole pack" else small  # all of the pack (one GET), or a small part (ranged GETs)
    before = state(stored_keys)

    proxy.cut_after(100_000, methods={"GET"})
    with record_storage_ops() as ops:
        body = assert_storage_503(http_fetch(caller, repo, want["commit_id"]))
    assert ("open_mpack" in {op.op for op in ops}) == (read == "whole pack")
    assert body["detail"].startswith(
        "Object storage is unavailable: could not " + ("read an mpack" if read == "whole pack" else "read mpack ranges")
    )
    assert state(stored_keys) == before, "no fetch pack stored or recorded"

    proxy.pass_through()
    assert http_fetch(caller, repo, want["commit_id"]).status == 200


def test_a_streamed_fetch_while_storage_is_down_is_a_json_503_before_the_reply_starts(store, proxy, stored_keys):
    user = make_user(f"alice-{uid()}")
    caller = WireCaller(token_for(user))
    repo = make_repo(owner=user)
    history = History()
    head = history.commit({"take.bin": b"\x01" * 300_000, "notes.txt": b"verse\n" * 50})
    push_history(repo, history)
    path = f"/{repo.owner}/{repo.slug}"
    before = stored_keys()

    proxy.stop()
    reply = caller.post(
        f"{path}/mpack/fetch",
        {"want": [head["commit_id"]], "have": [], "capabilities": ["snapshot-delta", "pack-stream"]},
        headers={"Accept": "application/json"},
    )
    assert_storage_503(reply)

    proxy.pass_through()
    again = caller.post(
        f"{path}/mpack/fetch",
        {"want": [head["commit_id"]], "have": [], "capabilities": ["snapshot-delta", "pack-stream"]},
    )
    assert again.status == 200 and {b["object_id"] for b in msgpack.unpackb(again.content)["blobs"]} == set(
        history.blobs
    )
    assert stored_keys() == before, "no fetch pack stored either time"


def test_an_mwp_fetch_while_storage_is_down_is_a_503_before_the_reply_starts(store, proxy, stored_keys):
    user = make_user(f"alice-{uid()}")
    caller = WireCaller(token_for(user), native=False)
    repo = make_repo(owner=user)
    history = History()
    head = history.commit({"take.bin": b"\x02" * 200_000})
    push_history(repo, history)
    path = f"/{repo.owner}/{repo.slug}"

    proxy.stop()
    reply = caller.post(f"{path}/fetch", {"want": [head["commit_id"][7:]], "have": []})
    assert reply.status == 503 and reply.headers["Retry-After"] == "5"

    proxy.pass_through()
    again = caller.post(f"{path}/fetch", {"want": [head["commit_id"][7:]], "have": []})
    assert again.status == 200
    body = msgpack.unpackb(again.content)
    assert [o["content"] for o in body["objects"]] == [b"\x02" * 200_000]
    assert [c["commit_id"] for c in body["commits"]] == [head["commit_id"][7:]]


def test_an_mwp_fetch_whose_storage_breaks_mid_read_is_a_whole_json_503(store, proxy):
    """The reply is assembled before its first byte: a storage failure after the first blob is still a JSON 503.

    (Sent as it was read, the reply began with the first blob and broke off: the muse CLI saw a broken pipe.)
    """
    user = make_user(f"alice-{uid()}")
    caller = WireCaller(token_for(user), native=False)
    repo = make_repo(owner=user)
    history = History()
    # One pack read whole: its first 1 MiB read holds the small blob, the cut comes inside the big one.
    head = history.commit({"a-small.txt": b"verse\n" * 20_000, "b-big.bin": random_bytes(3 * MiB)})
    push_history(repo, history)
    path = f"/{repo.owner}/{repo.slug}"

    proxy.cut_after(int(1.5 * MiB), methods={"GET"})
    reply = caller.post(f"{path}/fetch", {"want": [head["commit_id"][7:]], "have": []})
    assert_storage_503(reply)  # the whole body parses: one JSON object, not a reply cut short

    proxy.pass_through()
    again = caller.post(f"{path}/fetch", {"want": [head["commit_id"][7:]], "have": []})
    assert again.status == 200 and again.headers["Content-Length"] == str(len(again.content))
    assert {o["object_id"]: o["content"] for o in msgpack.unpackb(again.content)["objects"]} == {
        oid[7:]: content for oid, content in history.blobs.items()
    }


def test_an_mwp_fetch_whose_storage_stops_between_reads_is_a_whole_json_503(store, proxy):
    """Two packs, each read by one ranged GET (the fetch needs a small part of each); storage stops after the first.

    Whichever pack is read first arrives whole (its blob was the reply's first object), then nothing answers.
    """
    user = make_user(f"alice-{uid()}")
    caller = WireCaller(token_for(user), native=False)
    repo = make_repo(owner=user)
    big = {"one.bin": random_bytes(MiB), "two.bin": random_bytes(MiB + 1)}
    a, b = b"a" * 9000, b"b" * 9000
    history = History()
    base = history.commit(big)
    head = history.commit({**big, "a.txt": a, "b.txt": b}, parents=[base["commit_id"]])
    push_history(repo, history, commits=[base], blobs={blob_id(x): x for x in [*big.values(), a]})  # pack 1
    filler = random_bytes(MiB + 2)  # no file names it: it makes pack 2 big enough to be read by range too
    push_history(repo, history, commits=[head], blobs={blob_id(b): b, blob_id(filler): filler})  # pack 2
    body = {"want": [head["commit_id"][7:]], "have": [base["commit_id"][7:]]}

    def stop_after_the_first_read(op) -> None:
        if op.op == "get_range":  # reported once its span was read whole
            proxy.stop()

    proxy.reset_counts()
    store.add_observer(stop_after_the_first_read)
    try:
        reply = caller.post(f"/{repo.owner}/{repo.slug}/fetch", body)
    finally:
        store.remove_observer(stop_after_the_first_read)
    assert_storage_503(reply)
    assert [method for method, _ in proxy.requests] == ["GET"], "one pack was read, then storage was gone"

    proxy.pass_through()
    again = caller.post(f"/{repo.owner}/{repo.slug}/fetch", body)
    assert again.status == 200
    assert sorted(o["content"] for o in msgpack.unpackb(again.content)["objects"]) == [a, b]


def test_fetch_when_storing_its_pack_answers_slowdown_is_a_503(store, proxy, stored_keys, alice):
    user, caller = alice
    repo = make_repo(owner=user)
    history = History()
    head = history.commit({"a.txt": b"a", "b.txt": b"b"})  # cached blobs: the fetch reads no pack
    push_history(repo, history)
    before = state(stored_keys)

    proxy.reset_counts()
    proxy.answer_error(503, "SlowDown", methods={"PUT"})
    body = assert_storage_503(http_fetch(caller, repo, head["commit_id"]))
    assert "could not store an mpack (it answered SlowDown)" in body["detail"]
    assert proxy.methods_seen().count("PUT") == 2, "MUSEHUB_S3_MAX_ATTEMPTS is attempts: 2 PUTs, not 1 + 2 retries"
    assert state(stored_keys) == before
    assert not MPack.objects.filter(kind=MPackKind.FETCH).exists()

    proxy.pass_through()
    assert wire_fetch_mpack(repo, want=[head["commit_id"]], have=[])["blob_count"] == 2


# --- every operation of the store ---------------------------------------------------------------------

MPACK = fake_id("faults-mpack")
OBJECT = fake_id("faults-object")
OPERATIONS = {
    "put_mpack": lambda s: s.put_mpack(MPACK, b"pack bytes"),
    "get_mpack": lambda s: s.get_mpack(MPACK),
    "open_mpack": lambda s: s.open_mpack(MPACK),
    "read_ranges": lambda s: s.read_ranges(MPACK, [(0, 4)]),
    "mpack_exists": lambda s: s.mpack_exists(MPACK),
    "mpack_modified_time": lambda s: s.mpack_modified_time(MPACK),
    "delete_mpack": lambda s: s.delete_mpack(MPACK),
    "list_mpacks": lambda s: list(s.list_mpacks()),
    "put_upload": lambda s: s.put_upload("u-1", b"upload bytes"),
    "open_upload": lambda s: s.open_upload("u-1"),
    "promote_upload": lambda s: s.promote_upload("u-1", MPACK),
    "get": lambda s: s.get(OBJECT),
    "list_objects": lambda s: list(s.list_objects()),
    "check": lambda s: s.check(),
}


HUNG = ("open_mpack", "read_ranges", "put_mpack", "list_mpacks")  # each waits a read timeout: a few suffice
CASES = [(op, fault) for op in sorted(OPERATIONS) for fault in ("stopped", "InternalError", "hung")]


@pytest.mark.parametrize("operation, fault", [(op, f) for op, f in CASES if f != "hung" or op in HUNG])
def test_every_storage_operation_fails_as_storage_unavailable(settings, proxy, prefix, operation, fault):
    _use_mpack_storage(settings, proxied_s3_storages(proxy, prefix, read_timeout=1, attempts=1))
    store = get_backend()
    store.put_mpack(MPACK, b"pack bytes")
    store.put_upload("u-1", b"upload bytes")
    if fault == "stopped":
        proxy.stop()
    elif fault == "hung":
        proxy.hang()
    else:
        proxy.answer_error(500, "InternalError", "We encountered an internal error. Please try again.")
    with pytest.raises(StorageUnavailable) as caught:
        OPERATIONS[operation](store)
    assert caught.value.headers() == {"Retry-After": "5"}


@pytest.mark.parametrize("operation", ["get_mpack", "put_mpack", "list_mpacks", "open_upload", "list_objects"])
def test_a_missing_bucket_is_unavailable_not_empty(settings, proxy, prefix, operation):
    _use_mpack_storage(settings, proxied_s3_storages(proxy, prefix))
    proxy.answer_error(404, "NoSuchBucket", "The specified bucket does not exist.")
    with pytest.raises(StorageUnavailable, match="it answered NoSuchBucket"):
        OPERATIONS[operation](get_backend())


def test_a_missing_key_is_still_not_found(store):
    assert store.get_mpack(MPACK) is None
    assert store.open_mpack(MPACK) is None
    assert store.read_ranges(MPACK, [(0, 4)]) is None
    assert store.mpack_exists(MPACK) is False
    assert store.mpack_modified_time(MPACK) is None
    assert store.open_upload("never") is None
    assert store.get(OBJECT) is None
    store.put_mpack(MPACK, b"pack bytes")
    with store.open_mpack(MPACK) as stream:
        assert isinstance(stream, StorageStream) and stream.size == 10
        assert stream.read(4) + stream.read() == b"pack bytes"


# --- maintenance commands ---------------------------------------------------------------------------------


def test_gc_while_storage_is_down_exits_with_a_sentence_and_deletes_nothing(store, proxy, stored_keys):
    repo = make_repo()
    history = History()
    head = history.commit({"a.bin": random_bytes(10_000)})
    push_history(repo, history)
    wire_fetch_mpack(repo, want=[head["commit_id"]], have=[])  # a fetch pack: gc --grace 0 would drop it
    before = state(stored_keys)

    proxy.stop()
    with pytest.raises(CommandError) as caught:
        call_command("musehub_gc", "--grace", "0", "--no-progress", stdout=StringIO(), stderr=StringIO())
    message = str(caught.value)
    assert message.startswith("object storage is unavailable: could not list mpacks (EndpointConnectionError: ")
    assert "; retry later" in message
    assert state(stored_keys) == before


def test_fsck_while_storage_is_down_prints_a_sentence_not_a_traceback(store, proxy, capsys, monkeypatch):
    history = History()
    history.commit({"a.bin": random_bytes(10_000)})
    push_history(make_repo(), history)
    proxy.stop()

    # As `manage.py musehub_fsck` runs it: Django prints a CommandError as one line and exits 1.
    from django.core.management import base

    monkeypatch.setattr(base.connections, "close_all", lambda: None)  # keep the test's database connection
    command = load_command_class("repos", "musehub_fsck")
    with pytest.raises(SystemExit) as exited:
        command.run_from_argv(["manage.py", "musehub_fsck", "--no-progress", "--skip-checks"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("CommandError: object storage is unavailable: could not ")
    assert "; retry later" in err and "Traceback" not in err

    with pytest.raises(CommandError, match=r"^object storage is unavailable: .*; retry later"):
        call_command("musehub_fsck", "--json", "--no-progress", stdout=StringIO(), stderr=StringIO())


# --- MUSEHUB_S3_MAX_ATTEMPTS and the timeouts, from the environment ----------------------------------------

GIVE_UP = """
import json, time
from django.conf import settings
from musehub_core.errors import StorageUnavailable
from repos.storage.backend import get_backend
store = get_backend()
store._client()  # built before the clock starts (no request)
started = time.monotonic()
try:
    store.mpack_exists("sha256:" + "0" * 64)
    outcome = "answered"
except StorageUnavailable as exc:
    outcome = exc.message
print(json.dumps({"outcome": outcome, "elapsed": time.monotonic() - started,
                  "bound": settings.MUSEHUB_S3_MAX_WAIT_SECONDS}))
"""


@pytest.mark.parametrize("attempts", [1, 2])
def test_hung_storage_is_given_up_after_max_attempts_read_timeouts(proxy, tmp_path, attempts):
    proxy.hang()
    result = django_process(
        tmp_path, GIVE_UP, DJANGO_SECRET_KEY="k" * 50, MUSEHUB_S3_BUCKET=S3_BUCKET, MUSEHUB_S3_ENDPOINT_URL=proxy.url,
        MUSEHUB_S3_ACCESS_KEY=S3_KEYS["access_key"], MUSEHUB_S3_SECRET_KEY=S3_KEYS["secret_key"],
        MUSEHUB_S3_MAX_ATTEMPTS=str(attempts), MUSEHUB_S3_READ_TIMEOUT="1", MUSEHUB_S3_CONNECT_TIMEOUT="1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["outcome"].startswith("Object storage is unavailable: could not look up an mpack (ReadTimeoutError)")
    assert proxy.connections == attempts and len(proxy.requests) == attempts, "attempts, not 1 + retries"
    assert attempts * 1.0 <= shown["elapsed"] < 10
    assert shown["elapsed"] <= shown["bound"] == attempts * 2 + sum(min(2**i, 20) + 5 for i in range(attempts - 1))


# --- a worker's start ---------------------------------------------------------------------------------------


def test_warming_the_store_at_a_workers_start_builds_the_s3_client_without_a_request(store, proxy):
    """musehub.wsgi warms the store so no request pays for botocore's model; warming sends nothing to S3."""
    proxy.stop()  # any request would fail now
    assert store._shared_client is None
    store.warm()
    assert store._shared_client is not None
    client = store._shared_client
    store.warm()
    assert store._shared_client is client, "one client per process"
