"""Releases, tags, published domains and branch deletion: what the muse CLI publishes, and the REST API over it.

MWP calls are shaped like the CLI's HttpTransport (``create_release`` sends
JSON, the other calls msgpack; every call accepts ``application/x-msgpack,
application/json`` and reads msgpack); ``muse domains publish`` posts JSON and
reads JSON. REST calls are JSON with a Bearer token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import msgpack
import pytest
from django.test import Client
from django.urls import reverse

from musehub_client import cli
from musehub_client.http import EXIT_AUTH, EXIT_CONFLICT, EXIT_NOT_FOUND
from musehub_core.ids import hex_of
from repos.models import Branch, Collaborator, CommitRef, Domain, Release, Role, Tag
from repos.selectors import snapshot_ids_of
from repos.services.commits import commit_files_to_repo
from repos.services.proposals import close_proposal, create_proposal
from tests.factories import make_repo, make_user, uid
from tests.httpkit import token_for
from tests.mwpkit import HttpError, LocalRepo, MwpClient

pytestmark = pytest.mark.django_db

CLI_ACCEPT = "application/x-msgpack, application/json"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


# --- calling the hub as the muse CLI does ---------------------------------------------------------


class Cli:
    """MWP calls through Django's test client with the CLI's headers and bodies."""

    def __init__(self, repo, user=None) -> None:
        self.client = Client()
        self.base = f"/{repo.owner}/{repo.slug}"
        self.token = token_for(user) if user is not None else None

    def call(self, method: str, suffix: str, *, msgpack_body: Any = None, json_body: Any = None):
        headers = {"Accept": CLI_ACCEPT}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            data, kind = json.dumps(json_body).encode(), "application/json"
        elif msgpack_body is not None:
            data, kind = msgpack.packb(msgpack_body, use_bin_type=True), "application/x-msgpack"
        else:
            data, kind = b"", "application/x-msgpack"
        return self.client.generic(method, f"{self.base}/{suffix}", data=data, content_type=kind, headers=headers)

    def create_release(self, release: dict):
        return self.call("POST", "releases", json_body=release)

    def list_releases(self, query: str = ""):
        return self.call("GET", "releases" + (f"?{query}" if query else ""))

    def delete_release(self, tag: str):
        return self.call("DELETE", "releases/" + urllib.parse.quote(tag, safe=""))

    def push_tags(self, tags: list[dict]):
        return self.call("POST", "tags", msgpack_body={"tags": tags})


def unpacked(reply) -> Any:
    assert reply["Content-Type"] == "application/x-msgpack", reply.content[:300]
    return msgpack.unpackb(reply.content, raw=False)


def release_dict(tag: str, commit_id: str, snapshot_id: str, **fields: Any) -> dict:
    """A ReleaseRecord.to_dict() as ``muse release add`` builds it (ids in bare hex)."""
    return {
        "release_id": str(uuid.uuid4()),
        "repo_id": "local-repo-uuid",
        "tag": tag,
        "semver": {"major": 1, "minor": 2, "patch": 0, "pre": "", "build": ""},
        "channel": "stable",
        "commit_id": hex_of(commit_id),
        "snapshot_id": hex_of(snapshot_id),
        "title": "Spring release",
        "body": "Notes:\n- a chorus\n",
        "changelog": [
            {
                "commit_id": hex_of(commit_id),
                "message": "add a chorus",
                "sem_ver_bump": "minor",
                "breaking_changes": [],
                "author": "alice",
                "committed_at": "2026-03-01T10:00:00+00:00",
                "agent_id": "agent-7",
                "model_id": "model-x",
            }
        ],  # fmt: skip
        "agent_id": "agent-7",
        "model_id": "model-x",
        "is_draft": False,
        "gpg_signature": "",
        "created_at": "2026-03-02T09:30:00.123456+00:00",
        **fields,
    }


def commit(repo, files: dict, message: str, branch: str = "main") -> tuple[str, str]:
    """Commit *files* on the hub; return (commit id, snapshot id)."""
    commit_id = commit_files_to_repo(repo.repo_id, branch=branch, files=files, message=message, author="alice")
    return commit_id, snapshot_ids_of([commit_id])[commit_id]


@pytest.fixture
def songs(alice):
    repo = make_repo(alice, f"songs-{uid()}")
    first = commit(repo, {"a.txt": b"one"}, "first")
    second = commit(repo, {"a.txt": b"two"}, "second")
    return {"repo": repo, "first": first, "second": second}


# --- releases over MWP (live hub, urllib, exactly the CLI's calls) --------------------------------


def cli_request(url: str, method: str, *, token: str | None, body: bytes | None = None, kind: str = "") -> bytes:
    headers = {"Accept": CLI_ACCEPT}
    if body is not None:
        headers["Content-Type"] = kind
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise HttpError(exc.code, exc.read()) from None


@pytest.mark.django_db(transaction=True)
def test_a_release_pushed_by_the_cli_lists_and_retracts_with_every_field_round_tripped(live_server, alice):
    token = token_for(alice)
    hub = MwpClient(f"{live_server.url}/{alice.username}/album-{uid()}", token)
    local = LocalRepo()
    local.commit({"song.txt": b"la la"}, message="first")
    head = local.commit({"song.txt": b"la la la"}, message="second")
    assert hub.push(local)["ok"] is True
    snapshot = local.commits[head]["snapshot_id"]
    sent = release_dict("v1.2.0", head, snapshot, x_future_field={"kept": [1, 2, 3]})

    raw = cli_request(
        f"{hub.url}/releases", "POST", token=token, body=json.dumps(sent).encode(), kind="application/json"
    )
    created = msgpack.unpackb(raw, raw=False)
    release_id = created["release_id"]
    assert isinstance(release_id, str) and release_id != sent["release_id"], "the hub assigns its own id"

    listed = msgpack.unpackb(cli_request(f"{hub.url}/releases", "GET", token=token), raw=False)["releases"]
    assert len(listed) == 1
    got = listed[0]
    for key in ("tag", "semver", "channel", "commit_id", "snapshot_id", "title", "body", "changelog", "agent_id",
                "model_id", "is_draft", "gpg_signature", "created_at", "x_future_field"):  # fmt: skip
        assert got[key] == sent[key], key
    assert got["release_id"] == release_id
    assert got["commit_id"] == head and len(got["commit_id"]) == 64, "ids travel bare hex on MWP"
    anonymous = msgpack.unpackb(cli_request(f"{hub.url}/releases", "GET", token=None), raw=False)
    assert [r["tag"] for r in anonymous["releases"]] == ["v1.2.0"], "a public repository's releases are public"

    retracted = cli_request(f"{hub.url}/releases/{urllib.parse.quote('v1.2.0', safe='')}", "DELETE", token=token)
    assert msgpack.unpackb(retracted, raw=False) == {"retracted": "v1.2.0"}
    assert msgpack.unpackb(cli_request(f"{hub.url}/releases", "GET", token=token), raw=False) == {"releases": []}
    assert hub.refs()["branch_heads"] == {"main": head}, "retracting a release leaves history alone"
    with pytest.raises(HttpError) as caught:
        cli_request(f"{hub.url}/releases/v1.2.0", "DELETE", token=token)
    assert caught.value.status == 404


def test_a_duplicate_tag_is_a_conflict(songs, alice):
    cli_ = Cli(songs["repo"], alice)
    assert cli_.create_release(release_dict("v1.0.0", *songs["first"])).status_code == 201
    again = cli_.create_release(release_dict("v1.0.0", *songs["second"]))
    assert again.status_code == 409
    body = again.json()
    assert body["error"] == "conflict" and "already has a release 'v1.0.0'" in body["detail"]
    assert Release.objects.get(repo=songs["repo"], tag="v1.0.0").commit_id == songs["first"][0]


def test_a_release_of_a_commit_the_repository_lacks_is_refused_naming_it(songs, alice):
    other = make_repo(alice, f"other-{uid()}")
    foreign, foreign_snapshot = commit(other, {"b.txt": b"elsewhere"}, "not in songs")
    reply = Cli(songs["repo"], alice).create_release(release_dict("v9.0.0", foreign, foreign_snapshot))
    assert reply.status_code == 422
    assert reply.json()["error"] == "unknown_commit" and hex_of(foreign) in reply.json()["detail"]
    assert reply.json()["commit_id"] == hex_of(foreign)
    assert not Release.objects.exists()


def test_a_release_whose_snapshot_is_not_its_commits_is_refused(songs, alice):
    first, _ = songs["first"]
    reply = Cli(songs["repo"], alice).create_release(release_dict("v1.0.0", first, songs["second"][1]))
    assert reply.status_code == 422 and reply.json()["error"] == "invalid_release"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"commit_id": "not-an-id"}, "commit_id"),
        ({"channel": "weekly"}, "channel"),
        ({"tag": ""}, "tag"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"semver": {"major": -1}}, "semver.major"),
        ({"title": "x" * 301}, "title"),
    ],
)
def test_malformed_releases_are_refused_naming_the_field(songs, alice, change, field):
    reply = Cli(songs["repo"], alice).create_release({**release_dict("v1.0.0", *songs["first"]), **change})
    assert reply.status_code == 400, reply.content
    assert field in reply.json()["detail"]


def test_binary_or_nul_in_other_fields_is_a_400_not_a_500(songs, alice):
    fields = release_dict("v1.0.0", *songs["first"])
    reply = Cli(songs["repo"], alice).call("POST", "releases", msgpack_body={**fields, "blob": b"\x00\x01"})
    assert reply.status_code == 400
    reply = Cli(songs["repo"], alice).create_release({**fields, "note": "a\x00b"})
    assert reply.status_code == 400
    assert not Release.objects.exists()


def test_a_release_without_semver_or_created_at_gets_them_from_its_tag_and_the_clock(songs, alice):
    fields = release_dict("v2.1.3-beta.1", *songs["first"])
    del fields["semver"], fields["created_at"]
    created = unpacked(Cli(songs["repo"], alice).create_release(fields))
    assert created["semver"] == {"major": 2, "minor": 1, "patch": 3, "pre": "beta.1", "build": ""}
    assert dt.datetime.fromisoformat(created["created_at"]) > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def test_writing_releases_needs_the_write_role(songs, alice):
    repo = songs["repo"]
    fields = release_dict("v1.0.0", *songs["first"])
    anonymous = Cli(repo).create_release(fields)
    assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers
    reader = make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    assert Cli(repo, reader).create_release(fields).status_code == 403
    assert Cli(repo, make_user()).create_release(fields).status_code == 403, "a stranger reads a public repo, no more"
    writer = make_user()
    Collaborator.objects.create(repo=repo, user=writer, role=Role.WRITE)
    assert Cli(repo, writer).create_release(fields).status_code == 201
    assert Release.objects.get().author == writer.username
    assert Cli(repo).delete_release("v1.0.0").status_code == 401
    assert Cli(repo, reader).delete_release("v1.0.0").status_code == 403
    assert Cli(repo, alice).delete_release("v1.0.0").status_code == 200


def test_a_private_repositorys_releases_are_invisible_to_those_who_cannot_read_it(alice):
    repo = make_repo(alice, f"secret-{uid()}", visibility="private")
    first = commit(repo, {"a.txt": b"a"}, "first")
    assert Cli(repo, alice).create_release(release_dict("v1.0.0", *first)).status_code == 201
    stranger = make_user()
    for caller in (Cli(repo), Cli(repo, stranger)):
        assert caller.list_releases().status_code == 404
        assert caller.create_release(release_dict("v2.0.0", *first)).status_code == 404
        assert caller.delete_release("v1.0.0").status_code == 404
        assert caller.push_tags([{"tag": "x", "commit_id": hex_of(first[0])}]).status_code == 404
        assert Api(repo, stranger if caller.token else None).get("releases").status_code == 404
    reader = make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    assert [r["tag"] for r in unpacked(Cli(repo, reader).list_releases())["releases"]] == ["v1.0.0"]


def test_drafts_are_listed_only_for_those_who_may_write(songs, alice):
    repo = songs["repo"]
    owner = Cli(repo, alice)
    owner.create_release(release_dict("v1.0.0", *songs["first"], created_at="2026-01-01T00:00:00+00:00"))
    owner.create_release(release_dict("v1.1.0-beta.1", *songs["second"], channel="beta", is_draft=True))
    owner.create_release(release_dict("v1.1.0", *songs["second"], created_at="2026-02-01T00:00:00+00:00"))

    def tags(caller, query=""):
        return [r["tag"] for r in unpacked(caller.list_releases(query))["releases"]]

    assert tags(owner) == ["v1.1.0", "v1.0.0"], "newest first, drafts hidden by default"
    assert tags(owner, "include_drafts=1") == ["v1.1.0-beta.1", "v1.1.0", "v1.0.0"]
    assert tags(owner, "channel=beta&include_drafts=1") == ["v1.1.0-beta.1"]
    assert tags(Cli(repo), "include_drafts=1") == ["v1.1.0", "v1.0.0"], "readers never see drafts"
    assert Api(repo).get("releases/v1.1.0-beta.1").status_code == 404
    assert Api(repo, alice).get("releases/v1.1.0-beta.1").json()["is_draft"] is True
    assert owner.list_releases("channel=weekly").status_code == 400


# --- tags -----------------------------------------------------------------------------------------


def wire_tag(name: str, commit_id: str) -> dict:
    """A WireTag as the CLI sends it."""
    return {
        "tag_id": str(uuid.uuid4()),
        "repo_id": "local-repo-uuid",
        "commit_id": hex_of(commit_id),
        "tag": name,
        "created_at": "2026-03-01T12:00:00+00:00",
    }


def test_pushing_tags_is_idempotent_and_they_are_listed(songs, alice):
    repo = songs["repo"]
    first, second = songs["first"][0], songs["second"][0]
    owner = Cli(repo, alice)
    tags = [wire_tag("stage:rough-mix", first), wire_tag("emotion:joyful", first)]
    assert unpacked(owner.push_tags(tags)) == {"stored": 2, "skipped": 0}
    assert unpacked(owner.push_tags(tags)) == {"stored": 0, "skipped": 2}, "pushing again changes nothing"
    assert unpacked(owner.push_tags([wire_tag("emotion:joyful", second)])) == {"stored": 1, "skipped": 0}
    assert Tag.objects.filter(repo=repo).count() == 3

    listed = Api(repo).get("tags").json()
    assert listed["count"] == 3
    assert [(t["name"], t["commit_id"]) for t in listed["results"]] == [
        *sorted([("emotion:joyful", first), ("emotion:joyful", second)]),
        ("stage:rough-mix", first),
    ], "by name, then age, then commit"
    assert listed["results"][0]["created_at"].startswith("2026-03-01T12:00:00")
    on_second = Api(repo).get("tags", {"commit": hex_of(second)}).json()
    assert [t["name"] for t in on_second["results"]] == ["emotion:joyful"]


def test_tags_on_commits_the_repository_lacks_are_refused_and_none_is_stored(songs, alice):
    other = make_repo(alice, f"other-{uid()}")
    foreign, _ = commit(other, {"b.txt": b"b"}, "elsewhere")
    reply = Cli(songs["repo"], alice).push_tags([wire_tag("ok", songs["first"][0]), wire_tag("bad", foreign)])
    assert reply.status_code == 422 and hex_of(foreign) in reply.json()["detail"]
    assert not Tag.objects.exists()
    bad = Cli(songs["repo"], alice).push_tags([{"tag": "", "commit_id": hex_of(songs["first"][0])}])
    assert bad.status_code == 400 and "tags[0].tag" in bad.json()["detail"]
    assert Cli(songs["repo"], alice).call("POST", "tags", msgpack_body={"tags": "x"}).status_code == 400


def test_pushing_tags_needs_the_write_role(songs):
    tags = [wire_tag("x", songs["first"][0])]
    assert Cli(songs["repo"]).push_tags(tags).status_code == 401
    assert Cli(songs["repo"], make_user()).push_tags(tags).status_code == 403
    assert not Tag.objects.exists()


# --- the REST API over releases -------------------------------------------------------------------


class Api:
    def __init__(self, repo, user=None) -> None:
        self.client = Client()
        self.base = f"/api/v1/repos/{repo.owner}/{repo.slug}/"
        self.headers = {"Authorization": f"Bearer {token_for(user)}", "Accept": "application/json"} if user else {}

    def get(self, path: str, params: dict | None = None):
        return self.client.get(self.base + path, params or {}, headers=self.headers)

    def delete(self, path: str):
        return self.client.delete(self.base + path, headers=self.headers)


def test_the_rest_api_lists_releases_and_shows_one(songs, alice):
    repo = songs["repo"]
    Cli(repo, alice).create_release(release_dict("v1.0.0", *songs["first"], created_at="2026-01-01T00:00:00+00:00"))
    Cli(repo, alice).create_release(release_dict("v1.1.0", *songs["second"], created_at="2026-02-01T00:00:00+00:00"))
    page = Api(repo).get("releases").json()
    assert page["count"] == 2 and page["previous"] is None
    newest = page["results"][0]
    assert newest["tag"] == "v1.1.0"
    assert newest["commit_id"] == songs["second"][0], "REST ids carry their sha256: prefix"
    assert newest["notes"] == "Notes:\n- a chorus\n" and newest["title"] == "Spring release"
    assert newest["metadata"]["changelog"][0]["message"] == "add a chorus"
    assert newest["author"] == alice.username
    assert Api(repo).get("releases", {"page_size": 1}).json()["next"].endswith("page=2&page_size=1")
    one = Api(repo).get("releases/v1.0.0").json()
    assert one["commit_id"] == songs["first"][0] and one["semver"]["major"] == 1
    missing = Api(repo).get("releases/v3.0.0")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_the_openapi_schema_lists_the_new_endpoints():
    paths = Client().get("/api/schema/", headers={"Accept": "application/json"}).json()["paths"]
    base = "/api/v1/repos/{owner}/{slug}/"
    for path in (base + "releases", base + "releases/{tag}", base + "tags", "/api/v1/domains",
                 "/{owner}/{slug}/releases", "/{owner}/{slug}/tags"):  # fmt: skip
        assert path in paths, path
    assert "delete" in paths[base + "branches/{name}"]


# --- domains publish ------------------------------------------------------------------------------


def publish(user, **fields):
    """POST /api/v1/domains exactly as ``muse domains publish`` does (JSON in, JSON out)."""
    payload = {
        "author_slug": user.username if user else "nobody",
        "slug": "genomics",
        "display_name": "Genomics",
        "description": "Version DNA sequences as multidimensional state",
        "capabilities": {
            "dimensions": [{"name": "sequence", "description": "Bases"}],
            "artifact_types": ["text/x-fasta"],
            "merge_semantics": "three_way",
            "supported_commands": ["commit", "diff", "merge", "log", "status"],
        },
        "viewer_type": "genome",
        "version": "0.1.0",
        **fields,
    }
    headers = {"Accept": "application/json"}
    if user is not None:
        headers["Authorization"] = f"Bearer {token_for(user)}"
    return Client().post("/api/v1/domains", json.dumps(payload), content_type="application/json", headers=headers)


def test_publishing_a_domain_stores_its_manifest_and_answers_what_the_cli_prints(alice):
    reply = publish(alice)
    assert reply.status_code == 201
    body = reply.json()
    assert body["scoped_id"] == f"@{alice.username}/genomics"
    assert uuid.UUID(body["domain_id"])
    domain = Domain.objects.get()
    canonical = json.dumps(domain.capabilities, sort_keys=True, separators=(",", ":")).encode()
    assert body["manifest_hash"] == hashlib.sha256(canonical).hexdigest() == domain.manifest_hash
    assert domain.publisher == alice and domain.viewer_type == "genome"
    assert domain.capabilities["dimensions"] == [{"name": "sequence", "description": "Bases"}]

    listed = Client().get("/api/v1/domains").json()
    assert [d["scoped_id"] for d in listed["results"]] == [body["scoped_id"]]
    one = Client().get(f"/api/v1/domains/@{alice.username}/genomics")
    assert one.status_code == 200 and one.json()["publisher"] == alice.username
    assert Client().get(f"/api/v1/domains/{alice.username}/nope").status_code == 404


def test_republishing_needs_a_higher_version_unless_nothing_changed(alice):
    first = publish(alice).json()
    same = publish(alice)
    assert same.status_code == 200 and same.json()["manifest_hash"] == first["manifest_hash"]
    changed = publish(alice, description="Better words")
    assert changed.status_code == 409
    assert "bump the version" in changed.json()["detail"] and changed.json()["version"] == "0.1.0"
    assert publish(alice, description="Older", version="0.0.9").status_code == 409
    assert publish(alice, version="0.2.0-beta.1", description="Beta").status_code == 200
    bumped = publish(alice, version="0.2.0", capabilities={"merge_semantics": "ot"})
    assert bumped.status_code == 200
    assert bumped.json()["manifest_hash"] != first["manifest_hash"] and bumped.json()["domain_id"] == first["domain_id"]
    assert Domain.objects.get().version == "0.2.0"


def test_publishing_a_domain_needs_a_token_and_your_own_name(alice):
    assert publish(None).status_code == 401
    other = publish(alice, author_slug="someone-else")
    assert other.status_code == 403 and alice.username in other.json()["detail"]
    assert publish(alice, version="one").status_code == 400
    assert publish(alice, slug="Not A Slug").status_code == 400
    assert publish(alice, capabilities={"dimensions": "x"}).status_code == 400
    assert not Domain.objects.exists()


# --- deleting branches ----------------------------------------------------------------------------


@pytest.fixture
def branched(alice):
    repo = make_repo(alice, f"branched-{uid()}")
    commit(repo, {"a.txt": b"a"}, "root")
    feature, _ = commit(repo, {"b.txt": b"b"}, "feature work", branch="feature/x")
    return {"repo": repo, "feature": feature}


def test_deleting_a_branch_answers_it_as_it_was_and_keeps_its_commits(branched, alice):
    repo = branched["repo"]
    reply = Api(repo, alice).delete("branches/feature/x")
    assert reply.status_code == 200
    assert reply.json()["name"] == "feature/x" and reply.json()["head_commit_id"] == branched["feature"]
    assert not Branch.objects.filter(repo=repo, name="feature/x").exists()
    assert CommitRef.objects.filter(repo=repo, commit_id=branched["feature"]).exists()
    assert Api(repo, alice).get(f"commits/{branched['feature']}").status_code == 200, "still readable by id"
    assert Api(repo, alice).delete("branches/feature/x").status_code == 404


def test_the_default_branch_cannot_be_deleted(branched, alice):
    reply = Api(branched["repo"], alice).delete("branches/main")
    assert reply.status_code == 409
    assert reply.json()["error"] == "default_branch" and "default branch" in reply.json()["detail"]
    assert Branch.objects.filter(repo=branched["repo"], name="main").exists()


@pytest.mark.parametrize("direction", ["from", "to"])
def test_a_branch_an_open_proposal_uses_cannot_be_deleted(branched, alice, direction):
    repo = branched["repo"]
    commit(repo, {"c.txt": b"c"}, "other", branch="other")
    source, target = ("feature/x", "other") if direction == "from" else ("other", "feature/x")
    proposal = create_proposal(repo.repo_id, title="Merge", from_branch=source, to_branch=target, acting_user=alice)
    reply = Api(repo, alice).delete("branches/feature/x")
    assert reply.status_code == 409
    assert reply.json()["error"] == "branch_in_use" and "#1" in reply.json()["detail"]
    assert reply.json()["proposals"] == [1]
    close_proposal(repo.repo_id, proposal.proposal_id, acting_user=alice)
    assert Api(repo, alice).delete("branches/feature/x").status_code == 200, "a closed proposal does not hold it"


def test_deleting_a_branch_needs_the_write_role(branched, alice):
    repo = branched["repo"]
    reader = make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    assert Api(repo, reader).delete("branches/feature/x").status_code == 403
    assert Api(repo).delete("branches/feature/x").status_code == 401
    assert Api(repo, alice).delete("branches/nope").status_code == 404
    private = make_repo(alice, f"private-{uid()}", visibility="private")
    commit(private, {"a": b"a"}, "root")
    commit(private, {"b": b"b"}, "side", branch="side")
    assert Api(private, make_user()).delete("branches/side").status_code == 404
    assert Branch.objects.filter(repo=repo, name="feature/x").exists()


def run_client(*argv: str, token: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = [*argv, "-q"] + (["--token", token] if token else [])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_client_deletes_a_branch_and_reports_refusals_with_exit_codes(live_server, alice):
    repo = make_repo(alice, f"client-{uid()}")
    commit(repo, {"a.txt": b"a"}, "root")
    feature, _ = commit(repo, {"b.txt": b"b"}, "feature work", branch="feature/x")
    url = f"{live_server.url}/{alice.username}/{repo.slug}"
    token = token_for(alice)

    code, out, err = run_client("branch-delete", url, "feature/x", token=token)
    assert code == 0, err
    assert f"deleted branch feature/x of {url}" in out and hex_of(feature)[:12] in out
    assert not Branch.objects.filter(repo=repo, name="feature/x").exists()

    code, _, err = run_client("branch-delete", url, "main", token=token)
    assert code == EXIT_CONFLICT and "default branch" in err
    assert run_client("branch-delete", url, "feature/x", token=token)[0] == EXIT_NOT_FOUND
    reader = make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    code, _, err = run_client("branch-delete", url, "main", token=token_for(reader))
    assert code == EXIT_AUTH and "write" in err


# --- the admin ------------------------------------------------------------------------------------


def test_releases_tags_and_domains_have_admin_pages(songs, alice):
    repo = songs["repo"]
    Cli(repo, alice).create_release(release_dict("v1.0.0", *songs["first"]))
    Cli(repo, alice).push_tags([wire_tag("stage:master", songs["first"][0])])
    publish(alice)
    staff = Client()
    staff.force_login(make_user(f"admin-{uid()}", is_staff=True, is_superuser=True))
    for row, text in (
        (Release.objects.get(), "Spring release"),
        (Tag.objects.get(), "stage:master"),
        (Domain.objects.get(), "three_way"),
    ):
        meta = row._meta
        changelist = staff.get(reverse(f"admin:repos_{meta.model_name}_changelist"), {"q": ""})
        assert changelist.status_code == 200
        page = staff.get(reverse(f"admin:repos_{meta.model_name}_change", args=[row.pk]))
        assert page.status_code == 200 and text in page.content.decode(), meta.model_name
        assert staff.get(reverse(f"admin:repos_{meta.model_name}_add")).status_code == 403
    release = Release.objects.get()
    url = reverse("admin:repos_release_change", args=[release.pk])
    staff.post(url, {"title": "Renamed", "notes": "New notes"})
    release.refresh_from_db()
    assert (release.title, release.notes, release.tag) == ("Renamed", "New notes", "v1.0.0")
