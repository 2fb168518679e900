"""The reference client fetches with ``pack-stream``: the pack arrives in the fetch reply, nothing is stored."""

from __future__ import annotations

import pytest

from musehub_client.http import EXIT_SERVER, PACK_STREAM
from repos.models import MPack, MPackKind
from repos.storage.backend import get_backend
from tests.factories import make_user, uid
from tests.httpkit import token_for
from tests.test_client_e2e import make_tree, run, tree_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


def test_a_clone_streams_and_stores_no_fetch_pack(backend, live_server, alice, tmp_path):
    url = f"{live_server.url}/{alice.username}/stream-{uid()}"
    token = token_for(alice)
    work = tmp_path / "work"
    make_tree(work, 120)
    assert run("push", str(work), url, "-m", "first", token=token)[0] == 0
    stored = set(backend.list_mpacks())

    code, _, err = run("clone", url, str(tmp_path / "copy"), token=token)

    assert code == 0, err
    assert tree_of(tmp_path / "copy") == tree_of(work)
    assert set(backend.list_mpacks()) == stored, "the clone came in the reply: no pack was written for it"
    assert not MPack.objects.filter(kind=MPackKind.FETCH).exists()
    # A second push and a pull stream as well.
    (work / "dir0" / "new.txt").write_text("a new verse\n")
    assert run("push", str(work), url, "-m", "second", token=token)[0] == 0
    code, _, err = run("pull", str(tmp_path / "copy"), token=token)
    assert code == 0, err
    assert tree_of(tmp_path / "copy") == tree_of(work)
    assert set(backend.list_mpacks()) - stored <= set(MPack.objects.values_list("mpack_id", flat=True))
    assert not MPack.objects.filter(kind=MPackKind.FETCH).exists()


def test_a_stream_the_hub_cannot_finish_is_asked_for_again_then_reported(live_server, alice, tmp_path, caplog):
    url = f"{live_server.url}/{alice.username}/cut-{uid()}"
    token = token_for(alice)
    work = tmp_path / "work"
    make_tree(work, 30)
    assert run("push", str(work), url, "-m", "first", token=token)[0] == 0
    # The pack's bytes vanish from storage after the push: the fetch is planned (its index rows are there),
    # the reply starts, and the hub cannot read the blobs it promised.
    backend = get_backend()
    for mpack_id in MPack.objects.values_list("mpack_id", flat=True):
        backend.delete_mpack(mpack_id)

    code, _, err = run("clone", url, str(tmp_path / "copy"), token=token)

    assert code == EXIT_SERVER
    assert "cut short" in err
    cut = [r for r in caplog.records if r.name == "musehub.fetch" and "cut short" in r.getMessage()]
    assert len(cut) == 3, "the client asked three times"
    assert not (tmp_path / "copy" / "dir0").exists(), "nothing half-written"


def test_the_hub_lists_the_capability_the_client_asks_for(live_server, alice, tmp_path):
    from musehub_client.http import HubClient

    url = f"{live_server.url}/{alice.username}/caps-{uid()}"
    work = tmp_path / "work"
    make_tree(work, 3)
    assert run("push", str(work), url, "-m", "first", token=token_for(alice))[0] == 0
    with HubClient(url, token_for(alice)) as client:
        client.refs()
        assert PACK_STREAM in client.capabilities


def test_a_clone_of_a_damaged_pack_fails_leaves_nothing_and_the_hub_logs_which_pack(
    backend, live_server, alice, tmp_path, caplog
):
    from tests.test_fetch_stream import _damage_one_blob

    url = f"{live_server.url}/{alice.username}/damaged-{uid()}"
    token = token_for(alice)
    work = tmp_path / "work"
    make_tree(work, 40)
    assert run("push", str(work), url, "-m", "first", token=token)[0] == 0
    (pack,) = MPack.objects.values_list("mpack_id", flat=True)
    _damage_one_blob(pack)

    code, _, err = run("clone", url, str(tmp_path / "copy"), token=token)

    assert code == EXIT_SERVER, "the reply is cut at the pack's end: the client never keeps the damaged blob"
    assert "cut short" in err or "integrity check failed" in err
    assert not (tmp_path / "copy").exists()
    damaged = [r for r in caplog.records if r.name == "musehub.blobs" and r.levelname == "ERROR"]
    assert damaged and pack in damaged[0].getMessage() and "musehub_fsck" in damaged[0].getMessage()


def test_a_small_push_goes_inline_and_a_big_one_through_an_upload(backend, live_server, alice, tmp_path, monkeypatch):
    from musehub_client import http, operations
    from repos.models import MPack, MPackUpload

    url = f"{live_server.url}/{alice.username}/inline-{uid()}"
    token = token_for(alice)
    work = tmp_path / "work"
    make_tree(work, 20)
    assert run("push", str(work), url, "-m", "create", token=token)[0] == 0  # the first push creates the repo
    created: list[int] = []
    original = MPackUpload.objects.create
    monkeypatch.setattr(MPackUpload.objects, "create", lambda **kw: created.append(1) or original(**kw))

    (work / "dir0" / "small.txt").write_text("a small change\n")
    small = operations.push(work, token=token, message="small")
    assert "upload" not in small.phases and created == [], "one call: no upload slot, no PUT"
    assert small.uploaded == small.pack_bytes > 0 and MPack.objects.count() == 2

    from wire import push as wire_push

    monkeypatch.setattr(wire_push, "INLINE_PACK_MAX_BYTES", 16)  # the hub now refuses inline packs (413)...
    (work / "dir0" / "small.txt").write_text("refused inline\n")
    refused = operations.push(work, token=token, message="refused")
    assert "upload" in refused.phases and created == [1], "...and the client uploads the pack instead"

    monkeypatch.setattr(http, "INLINE_PACK_MAX_BYTES", 16)  # every pack is now too big to go inline
    (work / "dir0" / "small.txt").write_text("another change\n")
    big = operations.push(work, token=token, message="big")
    assert "upload" in big.phases and created == [1, 1]
    assert run("clone", url, str(tmp_path / "copy"), token=token)[0] == 0
    assert tree_of(tmp_path / "copy") == tree_of(work)


def test_a_clone_cut_by_a_damaged_pack_succeeds_on_the_retry_from_another_copy(backend, live_server, alice, tmp_path):
    from tests.test_fetch_stream import _damage_one_blob

    token = token_for(alice)
    work = tmp_path / "work"
    make_tree(work, 40)
    first, second = (f"{live_server.url}/{alice.username}/{name}-{uid()}" for name in ("first", "second"))
    from repos.models import MPackIndex
    from repos.storage.reader import plan_blob_reads

    assert run("push", str(work), first, "-m", "one", token=token)[0] == 0
    assert run("push", str(tmp_path / "work"), second, "-m", "two", token=token)[0] == 0  # the same blobs, again
    assert MPack.objects.count() == 2
    (pack,) = plan_blob_reads(MPackIndex.objects.values_list("entity_id", flat=True).distinct()).by_pack
    _damage_one_blob(pack)  # the pack a clone reads (the other one holds the same blobs)

    code, _, err = run("clone", first, str(tmp_path / "copy"), token=token)

    assert code == 0, err
    assert tree_of(tmp_path / "copy") == tree_of(work)
    # Only a streamed read that found the damage (and cut its reply there) marks the pack.
    assert MPack.objects.get(mpack_id=pack).damaged_at is not None, "the first reply was cut; the retry went through"
