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
    assert caught.value.status == 409 and b"'rel'" in caught.value.body
    local.heads["feature/x"] = local.heads["rel"]
    hub.push(local, "feature/x")
    local.heads["feature"] = local.heads["rel"]
    with pytest.raises(HttpError) as caught:
        hub.push(local, "feature")
    assert caught.value.status == 409 and b"'feature/x'" in caught.value.body
    assert set(hub.refs()["branch_heads"]) == {"rel", "feature/x"}


@pytest.mark.parametrize("name", ["with space", "a~1", "x^", "a:b", "what?", "glob*", "br[ack"])
def test_branch_names_git_refuses_are_400_naming_the_character(hub, name):
    local = LocalRepo()
    local.commit({"a.txt": b"a"}, message="one", branch=name)
    with pytest.raises(HttpError) as caught:
        hub.push(local, name)
    assert caught.value.status == 400
    assert b"git's rule" in caught.value.body
