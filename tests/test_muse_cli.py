"""What the muse CLI relies on beyond the basic flow (issue: every command that talks to a hub works).

Requests are shaped like the CLI's (tests/mwpkit.py) against a live hub.
"""

from __future__ import annotations

import pytest

from tests.factories import make_user, uid
from tests.httpkit import token_for
from tests.mwpkit import HttpError, LocalRepo, MwpClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


@pytest.fixture
def hub(live_server, alice):
    return MwpClient(f"{live_server.url}/{alice.username}/cli-{uid()}", token_for(alice))


def test_snapshot_created_at_round_trips_verbatim(hub):
    local = LocalRepo()
    local.commit({"a.txt": b"a"}, message="one")
    local.commit({"a.txt": b"b"}, message="two")
    hub.push(local)
    clone = hub.clone()
    sent = {sid: s["created_at"] for sid, s in local.snapshots.items()}
    assert all(sent.values())
    assert {sid: s["created_at"] for sid, s in clone.snapshots.items()} == sent


def test_the_first_branch_pushed_becomes_the_default_branch(hub):
    local = LocalRepo()
    local.commit({"a.txt": b"a"}, message="one", branch="trunk")
    hub.push(local, "trunk")
    assert hub.refs()["default_branch"] == "trunk"
    local.commit({"b.txt": b"b"}, message="two", branch="main")
    hub.push(local, "main")
    assert hub.refs()["default_branch"] == "trunk", "only the first branch sets it"


def test_branch_names_that_collide_as_paths_are_refused_naming_the_existing_branch(hub):
    local = LocalRepo()
    local.commit({"a.txt": b"a"}, message="one", branch="rel")
    hub.push(local, "rel")
    local.heads["rel/1"] = local.heads["rel"]
    with pytest.raises(HttpError) as caught:
        hub.push(local, "rel/1")
    assert caught.value.status == 422 and b"'rel'" in caught.value.body
    local.heads["feature/x"] = local.heads["rel"]
    hub.push(local, "feature/x")
    local.heads["feature"] = local.heads["rel"]
    with pytest.raises(HttpError) as caught:
        hub.push(local, "feature")
    assert caught.value.status == 422 and b"'feature/x'" in caught.value.body
    assert set(hub.refs()["branch_heads"]) == {"rel", "feature/x"}


@pytest.mark.parametrize("name", ["with space", "a~1", "x^", "a:b", "what?", "glob*", "br[ack"])
def test_branch_names_git_refuses_are_400_naming_the_character(hub, name):
    local = LocalRepo()
    local.commit({"a.txt": b"a"}, message="one", branch=name)
    with pytest.raises(HttpError) as caught:
        hub.push(local, name)
    assert caught.value.status == 400
    assert b"git's rule" in caught.value.body


def test_a_repository_made_by_a_push_takes_the_domain_of_its_history(hub):
    local = LocalRepo()
    first = local.commit({"song.mid": b"MThd"}, message="one")
    local.commits[first]["structured_delta"] = {"domain": "midi", "ops": []}
    hub.push(local)
    assert hub.refs()["domain"] == "midi"
    later = local.commit({"song.mid": b"MThd2"}, message="two")
    local.commits[later]["structured_delta"] = {"domain": "code", "ops": []}
    hub.push(local)
    assert hub.refs()["domain"] == "midi", "only the first push decides"


def test_creating_a_repository_through_the_api_accepts_a_domain(live_server, alice):
    import requests

    token = token_for(alice)
    reply = requests.post(
        f"{live_server.url}/api/v1/repos",
        json={"name": f"m-{uid()}", "domain": "midi"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert reply.status_code == 201 and reply.json()["domain"] == "midi"
    bad = requests.post(
        f"{live_server.url}/api/v1/repos",
        json={"name": f"m-{uid()}", "domain": "Not A Domain!"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert bad.status_code == 400 and "domain" in bad.json()["detail"]


def test_the_reply_cap_counts_what_is_really_sent(hub, settings):
    """Commits with big optional fields and long paths: the hub measures the reply, never sends past the cap."""
    import msgpack

    local = LocalRepo()
    folder = "f" * 150
    files = {f"{folder}/file-{i}.txt": f"{i}".encode() for i in range(200)}
    for n in range(5):
        files = {path: content + b"!" for path, content in files.items()}
        cid = local.commit(files, message=f"rewrite {n}")
        local.commits[cid]["structured_delta"] = {"domain": "code", "ops": [{"path": p, "op": "modify"} for p in files]}
    hub.push(local)
    head = local.heads["main"]
    body = {"want": [head], "have": []}
    settings.MUSEHUB_MWP_MAX_REPLY_BYTES = 64 * 2**20
    real = len(msgpack.packb(hub._request("POST", "fetch", body), use_bin_type=True))
    assert real > 400_000, "the optional fields and paths dominate this reply"
    settings.MUSEHUB_MWP_MAX_REPLY_BYTES = real - 1
    with pytest.raises(HttpError) as caught:
        hub._request("POST", "fetch", body)
    assert caught.value.status == 413 and b"reply_too_large" in caught.value.body
    settings.MUSEHUB_MWP_MAX_REPLY_BYTES = real + 96 * len(local.objects)
    assert hub._request("POST", "fetch", body)["commits"]


def test_filter_objects_before_the_first_push_answers_all_missing_for_the_owner(live_server, alice):
    ids = ["ab" * 32, "cd" * 32]
    owner = MwpClient(f"{live_server.url}/{alice.username}/not-yet-{uid()}", token_for(alice))
    assert owner._request("POST", "filter-objects", {"object_ids": ids}) == {"missing": ids}
    stranger = MwpClient(owner.url, token_for(make_user(f"bob-{uid()}")))
    with pytest.raises(HttpError) as caught:
        stranger._request("POST", "filter-objects", {"object_ids": ids})
    assert caught.value.status == 404


def test_a_post_to_an_unknown_url_is_json_404_not_a_csrf_page(live_server, alice):
    import requests

    reply = requests.post(f"{live_server.url}/{alice.username}/a/b/filter-objects", data=b"x", timeout=10)
    assert reply.status_code == 404 and reply.json()["error"] == "not_found"


def test_pushing_into_someone_elses_namespace_says_where_repositories_can_be_made(live_server, alice):
    bob = make_user(f"bob-{uid()}")
    hub = MwpClient(f"{live_server.url}/{bob.username}/stuff-{uid()}", token_for(alice))
    local = LocalRepo()
    local.commit({"a.txt": b"a"}, message="one")
    with pytest.raises(HttpError) as caught:
        hub.push(local)
    assert caught.value.status == 404 and f"your own name ({alice.username}/".encode() in caught.value.body
