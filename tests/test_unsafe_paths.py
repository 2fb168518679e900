"""Issue 25.11: paths with control or bidirectional characters are refused at push (both protocols), and
``musehub_fsck`` reports any stored before the rule.
"""

from __future__ import annotations

import json

import pytest

from musehub_core.errors import UnsafePath
from musehub_core.manifests import refuse_unsafe_paths, unsafe_paths
from repos.models import Commit, Repo
from repos.services import push as push_service
from repos.services.commits import commit_files_to_repo
from tests.factories import History, make_repo, make_user, push_history, uid
from tests.httpkit import WireCaller, row_counts, token_for
from tests.maintkit import run_json
from tests.mwpkit import HttpError, LocalRepo, MwpClient
from tests.test_http_api import http_push

UNSAFE = [
    "notes\r\nX-Injected: 1.txt",
    "line\nbreak.txt",
    "\x1b[31mred.txt",
    "bell\x07.mid",
    "dir/\u202egpj.exe",
    "tab\there.txt",
    "del\x7f.txt",
    "c1\x85.txt",
    "isolate\u2066.txt",
    "para\u2028graph.txt",
]
SAFE = ["a.txt", "dir/unicodé ♫.mid", "spaces in name.txt", "emoji 🎹.wav", "arabic ملف.txt", "zwj\u200d.txt"]


@pytest.mark.parametrize("path", UNSAFE)
def test_each_unsafe_character_is_found(path):
    assert unsafe_paths([*SAFE, path]) == [path]
    with pytest.raises(UnsafePath) as caught:
        refuse_unsafe_paths([*SAFE, path], "files")
    assert caught.value.status == 422 and caught.value.data["path"] == path and repr(path) in caught.value.message


def test_ordinary_unicode_paths_are_safe():
    assert unsafe_paths(SAFE) == []
    refuse_unsafe_paths(SAFE, "files")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["\x1b[2Jclear.txt", "a/\u202etxt.exe"])
def test_a_native_push_naming_an_unsafe_path_is_422_and_writes_nothing(path):
    user = make_user(f"p-{uid()}")
    caller = WireCaller(token_for(user))
    history = History()
    history.commit({"ok.txt": b"fine", path: b"evil"})
    before = row_counts()
    reply = http_push(caller, f"/{user.username}/paths", history)
    assert reply.status == 422, reply.content
    assert reply.data["error"] == "unsafe_path" and reply.data["path"] == path
    assert repr(path) in reply.data["detail"]
    assert row_counts() == before


@pytest.mark.django_db
def test_a_commit_made_on_the_hub_refuses_an_unsafe_path():
    repo = make_repo(make_user(f"c-{uid()}"), f"c-{uid()}")
    with pytest.raises(UnsafePath):
        commit_files_to_repo(repo.repo_id, branch="main", files={"x\ny": b"1"}, message="m", author="a")
    assert not Commit.objects.filter(commit_id__in=repo.commit_refs.values("commit_id")).exists()


@pytest.mark.django_db(transaction=True)
def test_an_mwp_push_naming_an_unsafe_path_is_422_naming_it(live_server):
    user = make_user(f"m-{uid()}")
    hub = MwpClient(f"{live_server.url}/{user.username}/mwp-{uid()}", token_for(user))
    local = LocalRepo()
    local.commit({"ok.txt": b"fine", "bell\x07.txt": b"ding"}, message="first")
    with pytest.raises(HttpError) as caught:
        hub.push(local)
    body = json.loads(caught.value.body)
    assert caught.value.status == 422 and body["error"] == "unsafe_path" and body["path"] == "bell\x07.txt"
    assert "'bell\\x07.txt'" in body["detail"]  # the path as Python writes it: every character visible
    owner, slug = hub.url.rsplit("/", 2)[-2:]
    repo = Repo.objects.filter(owner=owner, slug=slug).first()
    assert repo is None or not repo.commit_refs.exists()


@pytest.mark.django_db
def test_fsck_warns_of_unsafe_paths_stored_before_the_rule(monkeypatch):
    repo = make_repo(make_user(f"f-{uid()}"), f"f-{uid()}")
    history = History()
    history.commit({"ok.txt": b"fine", "old\r\nname.txt": b"legacy"})
    with monkeypatch.context() as before_the_rule:  # the push as the hub took it before this check existed
        before_the_rule.setattr(push_service, "refuse_unsafe_paths", lambda paths, where: None)
        push_history(repo, history)
    report = run_json("musehub_fsck", "--repo", f"{repo.owner}/{repo.slug}")
    unsafe = [p for p in report["problems"] if p["code"] == "path-unsafe"]
    assert len(unsafe) == 1 and unsafe[0]["severity"] == "warning"
    assert unsafe[0]["subject"] == history.snapshots[0]["snapshot_id"]
    assert "'old\\r\\nname.txt'" in unsafe[0]["message"]
