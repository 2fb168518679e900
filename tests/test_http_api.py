"""The native protocol over HTTP: routes, permissions, signed URLs and error shapes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from musehub_core.ids import blob_id
from repos.models import ApiToken, Collaborator, Repo, Role
from tests.factories import History, build_pack, make_repo, make_user, uid
from tests.httpkit import WireCaller, row_counts, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


@pytest.fixture
def as_alice(alice):
    return WireCaller(token_for(alice))


def http_push(caller: WireCaller, path: str, history: History, *, branch="main", force=False, blobs=None):
    """Upload a pack of the whole *history* and push it; return the push reply."""
    blobs = history.blobs if blobs is None else blobs
    data = build_pack(history.commits, history.snapshots, blobs)
    slot = caller.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert slot.status == 200, slot.content
    if not slot.data.get("exists"):
        assert caller.put_url(slot.data["upload_url"], data).status == 200
    return caller.post(
        f"{path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": branch, "head_commit_id": history.commits[-1]["commit_id"],
         "force": force, "commits_count": len(history.commits), "blobs_count": len(blobs)},
    )  # fmt: skip


def test_push_then_refs_and_fetch_over_http(as_alice, alice):
    history = History()
    head = history.commit({"a.txt": b"hello", "dir/b.bin": bytes(range(256))})
    path = f"/{alice.username}/demo"
    reply = http_push(as_alice, path, history)
    assert reply.status == 200 and reply.data["ok"] is True
    assert reply.data["branch_heads"] == {"main": head["commit_id"]}
    assert Repo.objects.filter(owner=alice.username, slug="demo").exists(), "the first push created the repo"
    refs = as_alice.get(f"{path}/refs").data
    assert refs["branch_heads"] == {"main": head["commit_id"]}
    assert WireCaller(native=False).get(f"{path}/refs").data["branch_heads"] == {"main": head["commit_id"][7:]}
    fetched = as_alice.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": []})
    assert fetched.status == 200
    assert (fetched.data["commit_count"], fetched.data["blob_count"]) == (1, 2)
    download = as_alice.get_url(fetched.data["mpack_url"])
    assert download.status == 200 and blob_id(download.content) == fetched.data["mpack_id"]
    ranged = as_alice.get_url(fetched.data["mpack_url"], headers={"Range": "bytes=2-9"})
    assert ranged.status == 206 and ranged.content == download.content[2:10]
    assert ranged.headers["Content-Range"] == f"bytes 2-9/{len(download.content)}"
    suffix = as_alice.get_url(fetched.data["mpack_url"], headers={"Range": "bytes=-4"})
    assert suffix.content == download.content[-4:]
    beyond = as_alice.get_url(fetched.data["mpack_url"], headers={"Range": f"bytes={len(download.content)}-"})
    assert beyond.status == 416


def test_each_wire_request_reads_its_repository_once(as_alice, alice):
    """The face resolves the repository and hands that Repo to the domain, which does not read it again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    history = History()
    head = history.commit({"a.txt": b"once"})
    path = f"/{alice.username}/once"
    data = build_pack(history.commits, history.snapshots, history.blobs)
    slot = as_alice.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert as_alice.put_url(slot.data["upload_url"], data).status == 200  # the slot created the repository
    mwp, bare = WireCaller(native=False), head["commit_id"][7:]
    calls = {
        "mpack/push": lambda: as_alice.post(
            f"{path}/mpack/push",
            {
                "mpack_key": blob_id(data),
                "branch": "main",
                "head_commit_id": head["commit_id"],
                "commits_count": 1,
                "blobs_count": 1,
            },
        ),  # fmt: skip
        "mpack/fetch": lambda: as_alice.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": []}),
        "mpack/fetch stream": lambda: as_alice.post(
            f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": [], "capabilities": ["pack-stream"]}
        ),
        "fetch": lambda: mwp.post(f"{path}/fetch", {"want": [bare], "have": []}),
        "negotiate": lambda: mwp.post(f"{path}/negotiate", {"want": [bare], "have": [bare]}),
    }
    for name, call in calls.items():
        with CaptureQueriesContext(connection) as queries:
            assert call().status == 200, name
        reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "musehub_repos".')]
        assert len(reads) == 1, (name, reads)


def test_non_fast_forward_is_409_and_force_wins(as_alice, alice):
    path = f"/{alice.username}/nff"
    first = History()
    first.commit({"a": b"1"})
    assert http_push(as_alice, path, first).status == 200
    other = History()
    other.commit({"a": b"2"})
    reply = http_push(as_alice, path, other)
    assert reply.status == 409
    assert reply.data["error"] == "non_fast_forward" and "force" in reply.data["detail"]
    assert http_push(as_alice, path, other, force=True).status == 200


def test_private_repo_is_invisible_without_read_access(alice, as_alice):
    repo = make_repo(alice, "secret", visibility="private")
    head = History().commit({"x": b"x"})
    path = f"/{alice.username}/secret"
    anonymous = WireCaller()
    stranger = WireCaller(token_for(make_user()))
    for caller in (anonymous, stranger):
        assert caller.get(f"{path}/refs").status == 404
        reply = caller.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": []})
        assert reply.status == 404 and reply.data["error"] == "repo_not_found"
    assert as_alice.get(f"{path}/refs").status == 200
    assert repo.visibility == "private"


def test_read_collaborator_can_fetch_but_not_push(alice, as_alice):
    repo = make_repo(alice, "shared", visibility="private")
    history = History()
    history.commit({"f": b"content"})
    assert http_push(as_alice, f"/{alice.username}/shared", history).status == 200
    bob = make_user()
    Collaborator.objects.create(repo=repo, user=bob, role=Role.READ)
    as_bob = WireCaller(token_for(bob))
    assert as_bob.get(f"/{alice.username}/shared/refs").status == 200
    more = History()
    more.commit({"g": b"other"})
    reply = as_bob.post(f"/{alice.username}/shared/mpack/upload", {"mpack_key": blob_id(b"x"), "size": 1})
    assert reply.status == 403 and "write" in reply.data["detail"]


def test_anonymous_push_to_public_repo_asks_for_a_token(alice):
    make_repo(alice, "open")
    reply = WireCaller().post(f"/{alice.username}/open/mpack/upload", {"mpack_key": blob_id(b"x"), "size": 1})
    assert reply.status == 401


def test_pushing_into_someone_elses_namespace_does_not_create_a_repo(alice):
    bob_caller = WireCaller(token_for(make_user()))
    reply = bob_caller.post(f"/{alice.username}/new/mpack/upload", {"mpack_key": blob_id(b"x"), "size": 1})
    assert reply.status == 404
    assert not Repo.objects.filter(owner=alice.username, slug="new").exists()


def test_revoked_and_expired_tokens_are_401(alice):
    make_repo(alice, "pub")
    revoked = token_for(alice)
    ApiToken.objects.filter(user=alice).update(revoked_at=timezone.now())
    reply = WireCaller(revoked).get(f"/{alice.username}/pub/refs")
    assert reply.status == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
    expired = token_for(alice)
    ApiToken.objects.filter(user=alice, revoked_at__isnull=True).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert WireCaller(expired).get(f"/{alice.username}/pub/refs").data["detail"] == "The token has expired."


def test_expired_signed_urls_are_refused(as_alice, alice, settings):
    history = History()
    head = history.commit({"a": b"a"})
    path = f"/{alice.username}/ttl"
    assert http_push(as_alice, path, history).status == 200
    settings.MUSEHUB_URL_TTL_SECONDS = -1
    fetched = as_alice.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": []})
    reply = as_alice.get_url(fetched.data["mpack_url"])
    assert reply.status == 403 and "expired" in reply.data["detail"]
    data = b"\x80"
    slot = as_alice.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": 1})
    assert as_alice.put_url(slot.data["upload_url"], data).status == 403


def test_signed_download_url_cannot_be_used_to_upload(as_alice, alice):
    history = History()
    head = history.commit({"a": b"a"})
    path = f"/{alice.username}/rw"
    assert http_push(as_alice, path, history).status == 200
    url = as_alice.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": []}).data["mpack_url"]
    reply = as_alice.put_url(url, b"overwrite")
    assert reply.status == 403 and "does not allow PUT" in reply.data["detail"]
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert as_alice.get_url(tampered).status == 403


def test_upload_must_match_its_slot(as_alice, alice):
    data = build_pack([], [], {blob_id(b"z"): b"z"})
    path = f"/{alice.username}/slot"
    slot = as_alice.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)}).data
    wrong = as_alice.put_url(slot["upload_url"], data[:-1] + b"\x00")
    assert wrong.status == 400 and "do not match" in wrong.data["detail"]
    bigger = as_alice.put_url(slot["upload_url"], data + b"extra")
    assert bigger.status == 413
    assert as_alice.put_url(slot["upload_url"], data, content_type="application/x-www-form-urlencoded").status == 200


def test_pack_uploaded_for_another_repo_cannot_be_pushed_here(as_alice, alice):
    history = History()
    head = history.commit({"a": b"mine"})
    data = build_pack(history.commits, history.snapshots, history.blobs)
    key = blob_id(data)
    slot = as_alice.post(f"/{alice.username}/one/mpack/upload", {"mpack_key": key, "size": len(data)}).data
    assert as_alice.put_url(slot["upload_url"], data).status == 200
    make_repo(alice, "two")
    before = row_counts()
    reply = as_alice.post(
        f"/{alice.username}/two/mpack/push",
        {"mpack_key": key, "branch": "main", "head_commit_id": head["commit_id"], "commits_count": 1, "blobs_count": 1},
    )
    assert reply.status == 404 and reply.data["error"] == "unknown_mpack"
    assert row_counts() == before


def test_error_bodies_are_json_even_when_msgpack_is_accepted(alice):
    reply = WireCaller().get(f"/{alice.username}/nothing/refs")
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.data) == {"error", "detail"}


def test_request_body_over_the_limit_is_413(as_alice, alice, settings):
    settings.MUSEHUB_MAX_REQUEST_BYTES = 100
    reply = as_alice.post(f"/{alice.username}/big/mpack/fetch", {"want": ["x" * 200], "have": []})
    assert reply.status == 413 and reply.data["error"] == "too_large"


def test_repository_api_creates_and_describes_repos(alice):
    client = WireCaller(token_for(alice)).client
    auth = {"Authorization": f"Bearer {token_for(alice)}"}
    reply = client.post(
        "/api/v1/repos", {"name": "songs", "visibility": "private"}, content_type="application/json", headers=auth
    )
    assert reply.status_code == 201
    assert reply.json()["full_name"] == f"{alice.username}/songs"
    assert reply.json()["clone_url"].endswith(f"/{alice.username}/songs")
    again = client.post("/api/v1/repos", {"name": "songs"}, content_type="application/json", headers=auth)
    assert again.status_code == 409
    bad = client.post("/api/v1/repos", {"name": "../x"}, content_type="application/json", headers=auth)
    assert bad.status_code == 400 and "Invalid repository name" in bad.json()["detail"]
    assert client.get(f"/api/v1/repos/{alice.username}/songs").status_code == 404, "private: anonymous sees nothing"
    assert client.get(f"/api/v1/repos/{alice.username}/songs", headers=auth).json()["visibility"] == "private"
    assert client.post("/api/v1/repos", {"name": "x"}, content_type="application/json").status_code == 401


def test_collaborators_are_managed_by_repo_admins(alice):
    repo = make_repo(alice, "team", visibility="private")
    bob = make_user()
    owner_auth = {"Authorization": f"Bearer {token_for(alice)}"}
    bob_auth = {"Authorization": f"Bearer {token_for(bob)}"}
    client = WireCaller().client
    url = f"/api/v1/repos/{alice.username}/team/collaborators/{bob.username}"
    assert client.put(url, {"role": "write"}, content_type="application/json", headers=bob_auth).status_code == 404
    assert client.put(url, {"role": "write"}, content_type="application/json", headers=owner_auth).status_code == 204
    assert Collaborator.objects.get(repo=repo, user=bob).role == "write"
    assert client.put(url, {"role": "write"}, content_type="application/json", headers=bob_auth).status_code == 403
    assert client.delete(url, headers=owner_auth).status_code == 204
    assert not Collaborator.objects.filter(repo=repo).exists()


def test_token_command_creates_lists_and_revokes(capsys):
    from io import StringIO

    out = StringIO()
    call_command("musehub_token", "create", "carol", "--create-user", "--name", "laptop", stdout=out)
    clear = out.getvalue().strip()
    assert clear.startswith("mh_")
    row = ApiToken.objects.get(user__username="carol")
    assert row.token_hash != clear and clear not in row.token_hash, "only a hash is stored"
    listing = StringIO()
    call_command("musehub_token", "list", "carol", stdout=listing)
    assert "active" in listing.getvalue() and clear not in listing.getvalue()
    call_command("musehub_token", "revoke", "carol", row.prefix, stdout=StringIO())
    assert WireCaller(clear).get("/carol/any/refs").status == 401


def test_openapi_schema_lists_the_wire_endpoints():
    reply = WireCaller().client.get("/api/schema/", headers={"Accept": "application/json"})
    assert reply.status_code == 200
    paths = reply.json()["paths"]
    assert "/{owner}/{slug}/mpack/push" in paths and "/api/v1/repos" in paths


def test_api_docs_page_needs_no_cdn():
    reply = WireCaller().client.get("/api/docs/")
    assert reply.status_code == 200
    page = reply.content.decode()
    assert "drf_spectacular_sidecar" in page and "cdn.jsdelivr" not in page


def test_native_push_body_keeps_the_ordinary_request_limit(as_alice, alice, settings):
    settings.MUSEHUB_MAX_REQUEST_BYTES = 100
    reply = as_alice.post(f"/{alice.username}/big/mpack/push", {"mpack_key": "x" * 200})
    assert reply.status == 413, "only MWP's push and push/objects get the larger push limit"


# --- inline push (capability push-inline) ----------------------------------------------------------


def _inline_push(caller: WireCaller, path: str, history: History, data: bytes, **fields):
    body = {
        "mpack_key": blob_id(data),
        "branch": "main",
        "head_commit_id": history.commits[-1]["commit_id"],
        "force": False,
        "commits_count": len(history.commits),
        "blobs_count": len(history.blobs),
        "mpack": data,
    }
    return caller.post(f"{path}/mpack/push", {**body, **fields})


def test_a_small_pack_goes_inline_in_the_push_call(as_alice, alice):
    from repos.models import MPack, MPackUpload
    from repos.storage.backend import get_backend

    path = f"/{alice.username}/inline-{uid()}"
    history = History()
    head = history.commit({"a.txt": b"inline", "b.bin": bytes(range(256)) * 40})
    data = build_pack(history.commits, history.snapshots, history.blobs)

    reply = _inline_push(as_alice, path, history, data)

    assert reply.status == 200 and reply.data["branch_heads"] == {"main": head["commit_id"]}
    assert "push-inline" in as_alice.get(f"{path}/refs").data["capabilities"]
    assert not MPackUpload.objects.exists(), "no upload slot"
    assert MPack.objects.filter(mpack_id=blob_id(data)).exists() and get_backend().get_mpack(blob_id(data)) == data
    fetched = as_alice.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": []})
    assert fetched.status == 200 and fetched.data["blob_count"] == 2


def test_an_inline_pack_is_refused_when_its_bytes_are_not_its_key_or_it_is_too_big(as_alice, alice, monkeypatch):
    from repos.models import MPack
    from repos.storage.backend import get_backend
    from wire import push as wire_push

    path = f"/{alice.username}/inline-bad-{uid()}"
    history = History()
    history.commit({"a.txt": b"one"})
    data = build_pack(history.commits, history.snapshots, history.blobs)
    wrong_key = blob_id(data + b"x")

    reply = _inline_push(as_alice, path, history, data, mpack_key=wrong_key)
    assert reply.status == 422 and "hash" in reply.data["detail"]
    assert not MPack.objects.exists() and not get_backend().mpack_exists(wrong_key)
    assert not get_backend().mpack_exists(blob_id(data))

    reply = _inline_push(as_alice, path, history, data, mpack="not bytes")
    assert reply.status == 400 and "mpack" in reply.data["detail"]

    monkeypatch.setattr(wire_push, "INLINE_PACK_MAX_BYTES", len(data) - 1)
    reply = _inline_push(as_alice, path, history, data)
    assert reply.status == 413 and "mpack/upload" in reply.data["detail"]
    assert not MPack.objects.exists()


def test_push_inline_is_listed_only_when_the_hubs_limits_take_an_inline_pack(as_alice, alice, settings):
    path = f"/{alice.username}/inline-limits-{uid()}"
    history = History()
    history.commit({"a.txt": b"x"})
    assert http_push(as_alice, path, history).status == 200
    assert "push-inline" in as_alice.get(f"{path}/refs").data["capabilities"]
    settings.MUSEHUB_MAX_REQUEST_BYTES = 1024 * 1024  # below a 4 MiB inline pack
    assert "push-inline" not in as_alice.get(f"{path}/refs").data["capabilities"]
