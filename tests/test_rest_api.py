"""The repository REST API (/api/v1/repos/{owner}/{slug}/…): browsing, proposals, permissions and pagination."""

from __future__ import annotations

import json
import os

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from musehub_core.ids import blob_id
from repos import readmodel
from repos.models import Collaborator, Commit, Object, Role
from repos.selectors import branch_heads
from repos.services.commits import commit_files_to_repo
from repos.services.repos import move_branch
from repos.storage.backend import record_storage_ops
from tests.factories import make_repo, make_user, uid
from tests.httpkit import token_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


APP = b"print('hello')\n"
APP2 = b"print('hello, world')\n"
BIG = os.urandom(10_000)  # over the content-cache limit: served from its mpack
HUGE = os.urandom(50_000)


class Api:
    """Call the REST API as a client would: JSON bodies, an optional Bearer token."""

    def __init__(self, repo, user=None) -> None:
        self.client = Client()
        self.base = f"/api/v1/repos/{repo.owner}/{repo.slug}/"
        self.headers = {"Authorization": f"Bearer {token_for(user)}"} if user is not None else {}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get(self.base + path, params or {}, headers={**self.headers, **(headers or {})})

    def send(self, method: str, path: str, body: dict | None = None):
        return self.client.generic(
            method,
            self.base + path,
            data=json.dumps(body or {}),
            content_type="application/json",
            headers={**self.headers, "Accept": "application/json"},
        )

    def post(self, path: str, body: dict | None = None):
        return self.send("POST", path, body)

    def patch(self, path: str, body: dict):
        return self.send("PATCH", path, body)


def commit(repo, branch: str, files: dict, message: str) -> str:
    return commit_files_to_repo(repo.repo_id, branch=branch, files=files, message=message, author="alice")


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


@pytest.fixture
def project(alice):
    """A public repo: main has three commits; feature/x forks after the second and adds one."""
    repo = make_repo(alice, "project")
    c1 = commit(repo, "main", {"README.md": b"# hello\n", "src/app.py": APP, "docs/guide.md": b"guide"}, "first")
    c2 = commit(repo, "main", {"src/app.py": APP2, "src/util.py": b"x = 1\n"}, "second")
    with transaction.atomic():
        move_branch(repo, "feature/x", c2)
    c3 = commit(repo, "main", {"docs/guide.md": None, "data/big.bin": BIG, "data/huge.bin": HUGE}, "third")
    f1 = commit(repo, "feature/x", {"src/feature.py": b"feature = True\n", "README.md": b"# feature\n"}, "feature")
    return {"repo": repo, "c1": c1, "c2": c2, "c3": c3, "f1": f1}


@pytest.fixture
def api(project, alice):
    return Api(project["repo"], alice)


def assert_page(body: dict) -> None:
    assert set(body) >= {"count", "next", "previous", "results"}


# --- branches -------------------------------------------------------------------------------------


def test_branches_are_listed_with_their_head_commits(api, project):
    reply = api.get("branches")
    assert reply.status_code == 200
    body = reply.json()
    assert_page(body)
    assert body["count"] == 2
    by_name = {b["name"]: b for b in body["results"]}
    assert by_name["main"]["head_commit_id"] == project["c3"]
    assert by_name["main"]["is_default"] is True and by_name["feature/x"]["is_default"] is False
    assert by_name["feature/x"]["head"]["message"] == "feature"


def test_branch_detail_takes_names_with_slashes(api, project):
    reply = api.get("branches/feature/x")
    assert reply.status_code == 200
    assert reply.json()["head"]["commit_id"] == project["f1"]
    missing = api.get("branches/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "ref_not_found"


def test_pages_have_one_shape_a_size_limit_and_a_clear_error_past_the_end(api):
    first = api.get("branches", {"page_size": 1}).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (2, 1, None)
    assert "page=2" in first["next"]
    second = api.get("branches", {"page_size": 1, "page": 2}).json()
    assert second["next"] is None and second["results"][0]["name"] != first["results"][0]["name"]
    past = api.get("branches", {"page": 9})
    assert past.status_code == 404 and set(past.json()) == {"error", "detail"}


def test_page_size_is_capped_at_one_hundred(alice):
    repo = make_repo(alice)
    parent = commit(repo, "main", {"f": b"0"}, "root")
    with transaction.atomic():
        for i in range(105):
            move_branch(repo, f"b{i:03d}", parent)
    body = Api(repo).get("branches", {"page_size": 1000}).json()
    assert body["count"] == 106 and len(body["results"]) == 100


# --- commits --------------------------------------------------------------------------------------


def test_the_log_lists_a_branch_newest_first(api, project):
    body = api.get("commits").json()
    assert_page(body)
    assert [c["commit_id"] for c in body["results"]] == [project["c3"], project["c2"], project["c1"]]
    feature = api.get("commits", {"ref": "feature/x"}).json()
    assert [c["commit_id"] for c in feature["results"]] == [project["f1"], project["c2"], project["c1"]]
    by_id = api.get("commits", {"ref": project["c2"][7:]}).json()
    assert by_id["count"] == 2, "a bare-hex commit id is a ref too"
    paged = api.get("commits", {"page_size": 2, "page": 2}).json()
    assert [c["commit_id"] for c in paged["results"]] == [project["c1"]]


def test_the_log_filters_by_path(api, project):
    app = api.get("commits", {"path": "src/app.py"}).json()
    assert [c["commit_id"] for c in app["results"]] == [project["c2"], project["c1"]]
    docs = api.get("commits", {"path": "docs"}).json()
    assert [c["commit_id"] for c in docs["results"]] == [project["c3"], project["c1"]]
    assert api.get("commits", {"path": "nowhere"}).json()["count"] == 0


def test_an_unknown_ref_is_404_and_an_empty_repository_has_an_empty_log(api, alice):
    reply = api.get("commits", {"ref": "nope"})
    assert reply.status_code == 404 and reply.json()["error"] == "ref_not_found"
    empty = Api(make_repo(alice)).get("commits")
    assert empty.status_code == 200 and empty.json()["count"] == 0


@pytest.mark.parametrize("path", ["", "src"])
def test_a_log_page_costs_the_same_number_of_queries_however_long_the_history(alice, path):
    def queries_for(length: int) -> int:
        repo = make_repo(alice)
        for i in range(length):
            commit(repo, "main", {f"src/{i % 3}.txt": str(i).encode()}, f"c{i}")
        caller = Api(repo)
        readmodel.clear_caches()  # as a fresh process: commits compared for an earlier history would save queries
        with CaptureQueriesContext(connection) as captured:
            reply = caller.get("commits", {"page_size": 10, "path": path})
        assert reply.status_code == 200 and len(reply.json()["results"]) == min(length, 10)
        return len(captured)

    assert queries_for(4) == queries_for(40)


def test_a_log_filtered_by_path_compares_each_commit_once_per_process(alice):
    repo = make_repo(alice)
    for i in range(40):
        commit(repo, "main", {f"src/{i % 3}.txt": str(i).encode(), "notes.txt": str(i // 10).encode()}, f"c{i}")
    readmodel.clear_caches()
    caller = Api(repo)
    first = caller.get("commits", {"path": "src/0.txt", "page_size": 5}).json()
    assert first["count"] == 14 and first["next"] is not None  # commits 0, 3, ... 39: the count stays exact
    for query in ({"path": "src/0.txt", "page_size": 5, "page": 3}, {"path": "notes.txt"}, {"path": "src"}):
        with CaptureQueriesContext(connection) as captured:
            reply = caller.get("commits", query)
        assert reply.status_code == 200
        read = [q["sql"] for q in captured.captured_queries]
        assert not any("musehub_snapshots" in sql for sql in read), f"{query}: no snapshot row read again"
        assert len(read) <= 8, query
    assert [c["message"] for c in reply.json()["results"][:3]] == ["c39", "c38", "c37"]
    notes = caller.get("commits", {"path": "notes.txt"}).json()
    assert [c["message"] for c in notes["results"]] == ["c30", "c20", "c10", "c0"] and notes["count"] == 4


def test_a_commit_shows_its_changes_against_its_first_parent(api, project):
    body = api.get(f"commits/{project['c3']}").json()
    assert body["message"] == "third" and body["parent_ids"] == [project["c2"]]
    assert body["changes"] == {"added": ["data/big.bin", "data/huge.bin"], "modified": [], "removed": ["docs/guide.md"]}
    second = api.get(f"commits/{project['c2'][7:]}").json()
    assert second["changes"] == {"added": ["src/util.py"], "modified": ["src/app.py"], "removed": []}
    root = api.get(f"commits/{project['c1']}").json()
    assert root["changes"]["added"] == ["README.md", "docs/guide.md", "src/app.py"]
    assert api.get("commits/sha256:" + "0" * 64).status_code == 404


# --- tree and raw ---------------------------------------------------------------------------------


def test_tree_lists_a_directory_at_a_ref(api, project):
    root = api.get("tree/main").json()
    assert_page(root)
    assert (root["ref"], root["commit_id"], root["path"]) == ("main", project["c3"], "")
    assert [(e["name"], e["kind"]) for e in root["results"]] == [("data", "dir"), ("src", "dir"), ("README.md", "file")]
    readme = root["results"][-1]
    assert (readme["object_id"], readme["size"]) == (blob_id(b"# hello\n"), 8)
    assert root["results"][0]["object_id"] is None and root["results"][0]["size"] is None
    src = api.get("tree/feature/x/src").json()
    assert (src["ref"], src["path"]) == ("feature/x", "src")
    assert [e["path"] for e in src["results"]] == ["src/app.py", "src/feature.py", "src/util.py"]
    old = api.get(f"tree/{project['c1']}/docs").json()
    assert [e["name"] for e in old["results"]] == ["guide.md"]


def test_tree_of_a_file_or_a_missing_directory_is_404(api):
    assert api.get("tree/main/README.md").status_code == 404
    assert api.get("tree/main/nowhere").status_code == 404
    assert api.get("tree/nobranch").json()["error"] == "ref_not_found"


def test_a_tree_page_and_a_raw_file_read_no_manifest_once_the_tree_is_indexed(alice):
    repo = make_repo(alice)
    commit(repo, "main", {f"dir/f{i:04d}.txt": str(i).encode() for i in range(650)} | {"dir/sub/x.txt": b"x"}, "big")
    readmodel.clear_caches()
    caller = Api(repo)
    first = caller.get("tree/main/dir", {"page_size": 100}).json()
    assert first["count"] == 651 and [e["name"] for e in first["results"][:2]] == ["sub", "f0000.txt"]
    with CaptureQueriesContext(connection) as tree_queries:
        last = caller.get("tree/main/dir", {"page_size": 100, "page": 7}).json()
    with CaptureQueriesContext(connection) as raw_queries:
        raw = body(caller.get("raw/main/dir/f0123.txt"))
    assert [e["name"] for e in last["results"]] == [f"f{i:04d}.txt" for i in range(599, 650)]
    assert last["count"] == 651 and last["next"] is None and last["results"][0]["size"] == 3
    assert raw == b"123"
    for captured in (tree_queries, raw_queries):
        read = [q["sql"] for q in captured.captured_queries]
        assert not any("manifest_blob" in sql for sql in read), "no manifest read once the tree is indexed"
        assert len(read) <= 6, read  # the same few queries however big the directory


def body(reply) -> bytes:
    """The bytes of a reply, streamed or not."""
    return b"".join(reply.streaming_content) if reply.streaming else reply.content


def test_raw_serves_a_file_with_its_type_and_object_id_as_etag(api):
    reply = api.get("raw/main/src/app.py", headers={"Accept": "image/png"})
    assert reply.status_code == 200
    assert body(reply) == APP2
    assert reply["Content-Type"].startswith("text/x-python")
    assert reply["ETag"] == f'"{blob_id(APP2)}"'
    assert reply["X-Content-Type-Options"] == "nosniff"
    old = api.get("raw/feature/x/README.md")
    assert body(old) == b"# feature\n" and old["Content-Type"] == "text/markdown; charset=utf-8"


def test_raw_answers_304_when_the_etag_matches(api):
    etag = f'"{blob_id(APP2)}"'
    with record_storage_ops() as ops:
        reply = api.get("raw/main/src/app.py", headers={"If-None-Match": etag})
    assert reply.status_code == 304 and reply.content == b"" and reply["ETag"] == etag
    assert ops == []
    stale = api.get("raw/main/src/app.py", headers={"If-None-Match": f'"{blob_id(APP)}"'})
    assert stale.status_code == 200


def test_raw_reads_an_uncached_blob_by_byte_range_from_its_mpack(api):
    assert Object.objects.get(object_id=blob_id(BIG)).content_cache is None
    with record_storage_ops() as ops:
        reply = api.get("raw/main/data/big.bin")
        content = body(reply)
    assert reply.status_code == 200 and content == BIG
    assert reply["Content-Type"] == "application/octet-stream"
    assert [op.op for op in ops] == ["get_range"], "one ranged read of the pack, not the whole pack"


def test_raw_of_a_directory_or_missing_file_is_404(api):
    assert api.get("raw/main/src").status_code == 404
    assert api.get("raw/main/missing.txt").status_code == 404
    assert api.get("raw/main").status_code == 400


# --- compare --------------------------------------------------------------------------------------


def test_compare_lists_the_head_commits_and_changed_paths_since_the_fork(api, project):
    body = api.get("compare/main...feature/x").json()
    assert_page(body)
    assert body["merge_base_commit_id"] == project["c2"]
    assert (body["ahead_by"], body["behind_by"]) == (1, 1)
    assert [c["commit_id"] for c in body["results"]] == [project["f1"]]
    assert body["changes"] == {"added": ["src/feature.py"], "modified": ["README.md"], "removed": []}
    back = api.get(f"compare/feature/x...{project['c1']}").json()
    assert (back["ahead_by"], back["behind_by"]) == (0, 2)


def test_compare_needs_two_known_refs(api):
    assert api.get("compare/main..feature/x").status_code == 400
    reply = api.get("compare/main...nope")
    assert reply.status_code == 404 and reply.json()["error"] == "ref_not_found"


# --- proposals ------------------------------------------------------------------------------------


def test_open_list_show_and_edit_proposals(api, project):
    created = api.post("proposals", {"title": "Feature X", "from_branch": "feature/x", "body": "Adds X."})
    assert created.status_code == 201, created.content
    proposal = created.json()
    assert (proposal["number"], proposal["to_branch"], proposal["state"]) == (1, "main", "open")
    assert proposal["base_commit_id"] == project["c2"] and proposal["head_commit_id"] == project["f1"]
    api.post("proposals", {"title": "Second", "from_branch": "main", "to_branch": "feature/x"})
    listing = api.get("proposals").json()
    assert_page(listing)
    assert [p["number"] for p in listing["results"]] == [2, 1]
    assert api.get("proposals/1").json()["title"] == "Feature X"
    edited = api.patch("proposals/1", {"title": "Feature X, final"})
    assert edited.status_code == 200 and edited.json()["title"] == "Feature X, final"
    assert api.patch("proposals/1", {}).status_code == 400
    assert api.get("proposals/9").status_code == 404


def test_proposals_are_filtered_by_state(api):
    for title in ("one", "two"):
        api.post("proposals", {"title": title, "from_branch": "feature/x"})
    assert api.post("proposals/1/close").json()["state"] == "closed"
    assert [p["title"] for p in api.get("proposals", {"state": "open"}).json()["results"]] == ["two"]
    assert [p["title"] for p in api.get("proposals", {"state": "closed"}).json()["results"]] == ["one"]
    bad = api.get("proposals", {"state": "weird"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


def test_merge_close_and_reopen_over_http(api, project):
    api.post("proposals", {"title": "X", "from_branch": "feature/x"})
    assert api.post("proposals/1/close").json()["state"] == "closed"
    refused = api.post("proposals/1/merge")
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_proposal"
    assert api.post("proposals/1/reopen").json()["state"] == "open"
    merged = api.post("proposals/1/merge", {"strategy": "squash"})
    assert merged.status_code == 200, merged.content
    body = merged.json()
    assert (body["state"], body["merge_strategy"]) == ("merged", "squash")
    assert branch_heads(project["repo"])["main"] == body["merge_commit_id"]
    assert Commit.objects.get(commit_id=body["merge_commit_id"]).storage_uri is None
    assert api.post("proposals/1/merge", {"strategy": "rebase"}).status_code == 400


def test_a_conflicted_merge_answers_409_with_the_conflict_list(api, project):
    commit(project["repo"], "main", {"README.md": b"# main\n"}, "main readme")
    api.post("proposals", {"title": "X", "from_branch": "feature/x"})
    heads = branch_heads(project["repo"])
    reply = api.post("proposals/1/merge")
    assert reply.status_code == 409
    body = reply.json()
    assert body["error"] == "merge_conflict" and "README.md" in body["detail"]
    assert body["conflicts"] == [{"path": "README.md", "kind": "both_modified"}]
    assert branch_heads(project["repo"]) == heads
    assert api.get("proposals/1").json()["state"] == "open"


def test_fast_forward_refused_is_409(api):
    api.post("proposals", {"title": "X", "from_branch": "feature/x"})
    reply = api.post("proposals/1/merge", {"strategy": "fast-forward"})
    assert reply.status_code == 409 and reply.json()["error"] == "non_fast_forward"


def test_proposal_permissions(project, alice):
    repo = project["repo"]
    reader, writer = make_user(), make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    Collaborator.objects.create(repo=repo, user=writer, role=Role.WRITE)
    anonymous, as_reader, as_writer = Api(repo), Api(repo, reader), Api(repo, writer)

    assert anonymous.get("proposals").status_code == 200
    assert anonymous.post("proposals", {"title": "X", "from_branch": "feature/x"}).status_code == 401
    assert as_reader.post("proposals", {"title": "X", "from_branch": "feature/x"}).status_code == 201
    denied = as_reader.post("proposals/1/merge")
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert anonymous.post("proposals/1/merge").status_code == 401
    assert Api(repo, make_user()).post("proposals/1/close").status_code == 403, "only the author or a writer"
    assert as_reader.patch("proposals/1", {"body": "mine"}).status_code == 200, "the author may edit"
    assert as_writer.post("proposals/1/merge").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["branches", "branches/main", "commits", "commits/{c1}", "tree/main", "raw/main/README.md", "compare/main...main",
     "proposals", "proposals/1"],
)  # fmt: skip
def test_a_private_repository_is_404_to_anonymous_callers_and_strangers(alice, path):
    repo = make_repo(alice, visibility="private")
    c1 = commit(repo, "main", {"README.md": b"secret"}, "first")
    path = path.format(c1=c1)
    for caller in (Api(repo), Api(repo, make_user())):
        reply = caller.get(path)
        assert reply.status_code == 404 and reply.json()["error"] == "repo_not_found", path
    assert Api(repo, alice).get(path).status_code in (200, 404)  # proposals/1 does not exist
    reader = make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    assert Api(repo, reader).get("branches").status_code == 200


def test_writes_to_a_private_repository_stay_invisible_to_strangers(alice):
    repo = make_repo(alice, visibility="private")
    commit(repo, "main", {"a": b"1"}, "first")
    reply = Api(repo, make_user()).post("proposals", {"title": "X", "from_branch": "main", "to_branch": "other"})
    assert reply.status_code == 404


def test_the_openapi_schema_lists_the_repository_api():
    paths = Client().get("/api/schema/", headers={"Accept": "application/json"}).json()["paths"]
    base = "/api/v1/repos/{owner}/{slug}/"
    for suffix in ("branches", "commits", "commits/{commit_id}", "tree/{spec}", "raw/{spec}", "compare/{spec}",
                   "proposals", "proposals/{number}", "proposals/{number}/merge"):  # fmt: skip
        assert base + suffix in paths, suffix
