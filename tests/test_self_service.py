"""Repositories people manage themselves: change, delete, rename, transfer, list; names in any case; reserved names."""

from __future__ import annotations

import importlib
import json
import time
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import Client

from musehub_core.errors import BadRequest, RepoMoved, RepoNotFound, UnknownBranch
from musehub_core.ids import blob_id
from repos.models import Branch, Collaborator, Commit, CommitRef, MPack, Object, Repo, Role
from repos.selectors import owned_first, readable_repos, repo_by_name
from repos.services.commits import commit_files_to_repo
from repos.services.repos import check_default_branch, may_create_under, rename_repo, repo_for_push, update_repo
from tests.factories import History, make_repo, make_user, push_history, uid
from tests.httpkit import WireCaller, token_for
from tests.maintkit import run_json

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class Caller:
    """A JSON client of /api/v1/, with an optional Bearer token."""

    def __init__(self, user=None) -> None:
        self.client = Client()
        self.headers = {"Accept": "application/json"}
        if user is not None:
            self.headers["Authorization"] = f"Bearer {token_for(user)}"

    def get(self, path: str, params: dict | None = None):
        return self.client.get("/api/v1/" + path, params or {}, headers=self.headers)

    def send(self, method: str, path: str, body: dict | None = None):
        return self.client.generic(
            method, "/api/v1/" + path, data=json.dumps(body or {}), content_type="application/json",
            headers=self.headers,
        )  # fmt: skip


def commit(repo, branch: str, files: dict, message: str = "change") -> str:
    return commit_files_to_repo(repo.repo_id, branch=branch, files=files, message=message, author="alice")


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


@pytest.fixture
def songs(alice):
    repo = make_repo(alice, f"Songs-{uid()}", description="first takes")
    commit(repo, "main", {"a.mid": b"MThd"})
    commit(repo, "draft", {"b.mid": b"MThd2"})
    return repo


# --- PATCH ----------------------------------------------------------------------------------------


def test_the_owner_changes_description_visibility_and_default_branch(songs, alice):
    reply = Caller(alice).send(
        "PATCH", f"repos/{songs.owner}/{songs.slug}", {"description": "b-sides", "visibility": "private",
                                                      "default_branch": "draft"},
    )  # fmt: skip
    assert reply.status_code == 200, reply.content
    assert (reply.json()["description"], reply.json()["visibility"], reply.json()["default_branch"]) == (
        "b-sides", "private", "draft",
    )  # fmt: skip
    stored = Repo.objects.get(pk=songs.pk)
    assert (stored.description, stored.visibility, stored.default_branch) == ("b-sides", "private", "draft")
    assert stored.updated_at > songs.updated_at
    assert Caller().get(f"repos/{songs.owner}/{songs.slug}").status_code == 404, "private now: hidden"
    refs = WireCaller(native=False).get(f"/{songs.owner}/{songs.slug}/refs")
    assert refs.status == 404


def test_a_default_branch_must_exist(songs, alice):
    reply = Caller(alice).send("PATCH", f"repos/{songs.owner}/{songs.slug}", {"default_branch": "nope"})
    assert reply.status_code == 422
    assert reply.json()["error"] == "unknown_branch"
    assert "draft, main" in reply.json()["detail"], "the message lists the branches there are"
    bad = Caller(alice).send("PATCH", f"repos/{songs.owner}/{songs.slug}", {"default_branch": "a b"})
    assert bad.status_code == 400
    assert Repo.objects.get(pk=songs.pk).default_branch == "main"


def test_check_default_branch_is_the_one_rule_for_every_face(songs, alice):
    assert check_default_branch(songs, "draft") == "draft"
    with pytest.raises(UnknownBranch):
        check_default_branch(songs, "gone")
    with pytest.raises(BadRequest):
        check_default_branch(songs, "..")
    empty = make_repo(alice, f"empty-{uid()}")
    assert check_default_branch(empty, "trunk") == "trunk", "no branch yet: the first push decides"
    with pytest.raises(UnknownBranch):
        update_repo(songs, acting_user=alice, default_branch="gone")


def test_an_empty_patch_is_400_and_only_admins_may_patch(songs, alice):
    path = f"repos/{songs.owner}/{songs.slug}"
    assert Caller(alice).send("PATCH", path, {}).status_code == 400
    writer = make_user()
    Collaborator.objects.create(repo=songs, user=writer, role=Role.WRITE)
    denied = Caller(writer).send("PATCH", path, {"description": "mine"})
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert Caller().send("PATCH", path, {"description": "x"}).status_code == 401
    admin = make_user()
    Collaborator.objects.create(repo=songs, user=admin, role=Role.ADMIN)
    assert Caller(admin).send("PATCH", path, {"description": "theirs"}).status_code == 200
    assert Repo.objects.get(pk=songs.pk).description == "theirs"


# --- DELETE ---------------------------------------------------------------------------------------


def test_an_admin_deletes_a_repository_and_its_rows_while_content_waits_for_gc(songs, alice):
    path = f"repos/{songs.owner}/{songs.slug}"
    writer = make_user()
    Collaborator.objects.create(repo=songs, user=writer, role=Role.WRITE)
    assert Caller(writer).send("DELETE", path).status_code == 403
    commit_ids = list(CommitRef.objects.filter(repo=songs).values_list("commit_id", flat=True))
    assert commit_ids
    reply = Caller(alice).send("DELETE", path)
    assert reply.status_code == 204
    assert not Repo.objects.filter(pk=songs.pk).exists()
    assert not Branch.objects.filter(repo_id=songs.pk).exists()
    assert not CommitRef.objects.filter(repo_id=songs.pk).exists()
    assert not Collaborator.objects.filter(repo_id=songs.pk).exists()
    assert Commit.objects.filter(commit_id__in=commit_ids).count() == len(commit_ids), "gc's job, not delete's"
    assert Caller(alice).get(path).status_code == 404


def test_gc_then_removes_the_packs_and_content_only_the_deleted_repository_used(alice, backend):
    kept, doomed = make_repo(alice, f"kept-{uid()}"), make_repo(alice, f"doomed-{uid()}")
    shared, own = b"a blob both repositories hold" * 10, b"only the deleted repository had this" * 10
    history = History()
    history.commit({"shared.txt": shared})
    push_history(kept, history)
    other = History()
    other.commit({"shared.txt": shared, "own.txt": own})
    push_history(doomed, other)
    pack = MPack.objects.get(repo=doomed).mpack_id
    assert Caller(alice).send("DELETE", f"repos/{doomed.owner}/{doomed.slug}").status_code == 204
    assert backend.mpack_exists(pack), "deleting the repository leaves its pack to gc"
    run_json("musehub_gc", "--grace", "0")
    assert not backend.mpack_exists(pack)
    assert not Object.objects.filter(object_id=blob_id(own)).exists()
    assert Object.objects.filter(object_id=blob_id(shared)).exists(), "the kept repository still needs it"
    assert not Commit.objects.filter(commit_id__in=[c["commit_id"] for c in other.commits]).exists()
    assert run_json("musehub_fsck")["ok"] is True


# --- rename and transfer --------------------------------------------------------------------------


def test_a_renamed_repository_answers_a_clear_404_at_its_old_name_on_every_face(songs, alice):
    old = f"{songs.owner}/{songs.slug}"
    reply = Caller(alice).send("POST", f"repos/{old}/rename", {"slug": "album"})
    assert reply.status_code == 200, reply.content
    assert reply.json()["full_name"] == f"{alice.username}/album"
    assert reply.json()["clone_url"].endswith(f"/{alice.username}/album")
    assert Caller(alice).get(f"repos/{alice.username}/album/branches").status_code == 200
    for answer in (Caller(alice).get(f"repos/{old}"), Caller().get(f"repos/{old}/branches")):
        assert answer.status_code == 404
        assert answer.json()["error"] == "repo_moved"
        assert answer.json()["moved_to"] == f"{alice.username}/album"
    wire = WireCaller(native=False).get(f"/{old}/refs")
    assert wire.status == 404, "wire clients refuse redirects"
    assert wire.data["error"] == "repo_moved" and f"{alice.username}/album" in wire.data["detail"]


def test_a_push_to_the_old_name_does_not_create_a_new_repository(songs, alice):
    old_slug = songs.slug
    rename_repo(songs, acting_user=alice, new_slug="album")
    with pytest.raises(RepoMoved):
        repo_for_push(acting_user=alice, owner=alice.username, slug=old_slug)
    reply = WireCaller(token_for(alice)).post(
        f"/{alice.username}/{old_slug}/mpack/upload", {"mpack_key": "sha256:" + "0" * 64, "size": 10}
    )
    assert reply.status == 404 and reply.data["error"] == "repo_moved"
    assert not Repo.objects.filter(slug=old_slug).exists()


def test_a_private_repository_moved_stays_hidden_from_strangers(alice):
    repo = make_repo(alice, f"secret-{uid()}", visibility="private")
    old = f"{repo.owner}/{repo.slug}"
    rename_repo(repo, acting_user=alice, new_slug=f"hidden-{uid()}")
    stranger = Caller(make_user()).get(f"repos/{old}")
    assert stranger.status_code == 404 and stranger.json()["error"] == "repo_not_found"
    assert "moved_to" not in stranger.json()
    assert Caller(alice).get(f"repos/{old}").json()["error"] == "repo_moved"


def test_a_superuser_transfers_a_repository_and_the_former_owner_keeps_admin_access(songs, alice):
    bob = make_user(f"bob-{uid()}")
    helper = make_user()
    Collaborator.objects.create(repo=songs, user=helper, role=Role.ADMIN)
    path = f"repos/{songs.owner}/{songs.slug}/rename"
    refused = Caller(helper).send("POST", path, {"owner": bob.username})
    assert refused.status_code == 403, "an admin collaborator renames, never transfers"
    owner_refused = Caller(alice).send("POST", path, {"owner": bob.username})
    assert owner_refused.status_code == 403 and "superuser" in owner_refused.json()["detail"], (
        "no acceptance step yet: an owner cannot put repositories in someone else's name"
    )
    admin = make_user(f"root-{uid()}")
    admin.is_superuser = True
    admin.save(update_fields=["is_superuser"])
    reply = Caller(admin).send("POST", path, {"owner": bob.username})
    assert reply.status_code == 200, reply.content
    moved = Repo.objects.get(pk=songs.pk)
    assert (moved.owner, moved.owner_user) == (bob.username, bob)
    assert Collaborator.objects.get(repo=moved, user=alice).role == Role.ADMIN
    assert Caller(bob).send("PATCH", f"repos/{bob.username}/{songs.slug}", {"description": "mine"}).status_code == 200
    unknown = Caller(bob).send("POST", f"repos/{bob.username}/{songs.slug}/rename", {"owner": f"nobody-{uid()}"})
    assert unknown.status_code == 404


def test_a_rename_onto_a_taken_name_in_any_case_is_409_and_a_case_change_is_allowed(songs, alice):
    make_repo(alice, "taken")
    reply = Caller(alice).send("POST", f"repos/{songs.owner}/{songs.slug}/rename", {"slug": "TAKEN"})
    assert reply.status_code == 409
    assert "taken" in reply.json()["detail"]
    recased = rename_repo(songs, acting_user=alice, new_slug=songs.slug.lower())
    assert recased.slug == songs.slug.lower()
    assert Caller(alice).get(f"repos/{alice.username}/{songs.slug}").status_code == 200, "same name in any case"


def test_renaming_back_reuses_the_old_name(songs, alice):
    first = songs.slug
    rename_repo(songs, acting_user=alice, new_slug="album")
    back = rename_repo(Repo.objects.get(pk=songs.pk), acting_user=alice, new_slug=first)
    assert back.slug == first
    assert back.former_names.splitlines() == [f"{alice.username}/album".lower()]
    assert Caller(alice).get(f"repos/{alice.username}/album").json()["moved_to"] == f"{alice.username}/{first}"


# --- names in any case ----------------------------------------------------------------------------


def test_names_are_case_insensitive_and_keep_their_spelling(alice):
    repo = make_repo(alice, "MySongs")
    commit(repo, "main", {"a": b"1"})
    reply = Caller().get(f"repos/{alice.username.upper()}/mysongs")
    assert reply.status_code == 200 and reply.json()["slug"] == "MySongs"
    assert repo_by_name(alice.username, "MYSONGS").pk == repo.pk
    assert WireCaller(native=False).get(f"/{alice.username}/mysongs/refs").status == 200
    taken = Caller(alice).send("POST", "repos", {"name": "mysongs"})
    assert taken.status_code == 409 and "MySongs" in taken.json()["detail"]


def test_a_push_to_your_own_name_in_another_case_creates_it_under_your_spelling(alice):
    repo = repo_for_push(acting_user=alice, owner=alice.username.upper(), slug="Demo")
    assert (repo.owner, repo.slug) == (alice.username, "Demo")
    assert repo_for_push(acting_user=alice, owner=alice.username, slug="demo").pk == repo.pk


def test_the_database_refuses_two_names_that_differ_only_in_case(alice):
    make_repo(alice, "Tune")
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017  (IntegrityError from the unique index)
        Repo.objects.create(
            repo_id="sha256:" + "1" * 64, owner=alice.username.upper(), slug="tune", name="tune",
            created_at=Repo.objects.get(slug="Tune").created_at, updated_at=Repo.objects.get(slug="Tune").updated_at,
        )  # fmt: skip


def test_the_migration_refuses_colliding_data_and_names_the_repositories(alice):
    migration = importlib.import_module("repos.migrations.0008_self_service")
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute("DROP INDEX musehub_repo_owner_slug_ci")
    first = make_repo(alice, "Demo")
    second = make_repo(alice, "DEMO")
    make_repo(alice, "other")
    editor = SimpleNamespace(connection=connection)
    with pytest.raises(migration.CaseCollision) as raised:
        migration.refuse_case_collisions(django_apps, editor)
    assert isinstance(raised.value, CommandError), "manage.py migrate prints it as one message, no traceback"
    message = str(raised.value)
    assert f"{alice.username}/Demo" in message and f"{alice.username}/DEMO" in message
    assert first.repo_id in message and second.repo_id in message
    assert "other" not in message
    Repo.objects.filter(pk=second.pk).delete()
    migration.refuse_case_collisions(django_apps, editor)  # nothing collides any more


# --- listing --------------------------------------------------------------------------------------


def test_the_list_holds_what_the_caller_may_read_newest_activity_first(alice):
    bob = make_user(f"bob-{uid()}")
    public = make_repo(alice, f"pub-{uid()}", description="Jazz standards")
    private = make_repo(alice, f"priv-{uid()}", visibility="private")
    shared = make_repo(bob, f"shared-{uid()}", visibility="private")
    Collaborator.objects.create(repo=shared, user=alice, role=Role.READ)
    time.sleep(0.01)
    commit(public, "main", {"a": b"1"})  # the newest activity

    def names(reply) -> list[str]:
        assert reply.status_code == 200
        return [r["full_name"] for r in reply.json()["results"]]

    anonymous = names(Caller().get("repos", {"owner": alice.username}))
    assert anonymous == [public.full_name]
    mine = names(Caller(alice).get("repos", {"page_size": 100}))
    assert {public.full_name, private.full_name, shared.full_name} <= set(mine)
    assert mine[0] == public.full_name
    assert shared.full_name not in names(Caller(make_user()).get("repos", {"page_size": 100}))
    assert names(Caller(alice).get("repos", {"owner": bob.username.upper()})) == [shared.full_name]
    assert names(Caller().get("repos", {"q": "JAZZ"})) == [public.full_name]
    page = Caller(alice).get("repos", {"owner": alice.username, "page_size": 1}).json()
    assert page["count"] == 2 and page["next"] and len(page["results"]) == 1


def test_owned_first_puts_your_repositories_and_collaborations_before_newer_public_ones(alice):
    bob = make_user(f"bob-{uid()}")
    mine = make_repo(alice, f"mine-{uid()}")
    shared = make_repo(bob, f"shared-{uid()}")
    Collaborator.objects.create(repo=shared, user=alice, role=Role.WRITE)
    time.sleep(0.01)
    newer = make_repo(bob, f"newer-{uid()}")
    ordered = [
        r.pk for r in owned_first(readable_repos(alice, q=None), alice) if r.pk in {mine.pk, shared.pk, newer.pk}
    ]
    assert ordered[-1] == newer.pk and set(ordered[:2]) == {mine.pk, shared.pk}
    anonymous = [r.pk for r in owned_first(readable_repos(None), None) if r.pk in {mine.pk, shared.pk, newer.pk}]
    assert anonymous[0] == newer.pk, "newest activity first for everyone else"


def test_readable_repos_costs_one_query_whatever_the_number_of_repositories(alice, django_assert_num_queries):
    for _ in range(5):
        make_repo(alice, f"many-{uid()}", visibility="private")
    with django_assert_num_queries(1):
        rows = list(readable_repos(alice, owner=alice.username))
    assert len(rows) == 5 and all(r.owner_user.username == alice.username for r in rows)


# --- the user, and pushes to names that cannot be created -----------------------------------------


def test_the_user_endpoint_names_the_token_user_and_is_401_without_one(alice):
    reply = Caller(alice).get("user")
    assert reply.status_code == 200 and reply.json()["username"] == alice.username
    anonymous = Caller().get("user")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthenticated"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_push_into_someone_elses_namespace_says_you_create_only_under_your_own_name(alice):
    bob = make_user(f"bob-{uid()}")
    reply = WireCaller(token_for(alice)).post(
        f"/{bob.username}/new-{uid()}/mpack/upload", {"mpack_key": "sha256:" + "0" * 64, "size": 10}
    )
    assert reply.status == 404
    assert "only under your own name" in reply.data["detail"] and alice.username in reply.data["detail"]
    with pytest.raises(RepoNotFound, match="only under your own name"):
        repo_for_push(acting_user=alice, owner=bob.username, slug="x")


@pytest.mark.parametrize("url", ["/admin/x/refs", "/Admin/x/refs", "/api/x/refs", "/admin/x/releases/v1"])
def test_a_reserved_owner_answers_a_clear_json_error(url):
    reply = WireCaller(native=False).get(url)
    assert reply.status == 404, reply.content[:200]
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.data["error"] == "reserved_owner"
    assert "no repository can live under it" in reply.data["detail"]


@pytest.mark.parametrize("suffix", ["filter-objects", "mpack/upload", "push", "push/objects"])
def test_a_push_to_a_reserved_owner_answers_json_even_for_a_user_named_admin(suffix):
    admin = make_user("admin")
    reply = WireCaller(token_for(admin), native=False).post(f"/admin/songs/{suffix}", {"object_ids": []})
    assert reply.status == 404
    assert reply.data["error"] == "reserved_owner"


def test_asking_which_objects_a_repository_under_another_name_lacks_says_whose_namespace_it_is(alice):
    bob = make_user(f"bob-{uid()}")
    caller = WireCaller(token_for(alice))
    oid = blob_id(b"a take")

    mine = caller.post(f"/{alice.username}/new-{uid()}/filter-objects", {"object_ids": [oid]})
    assert mine.status == 200 and mine.data["missing"] == [oid], "a repository a push would create holds nothing"

    theirs = caller.post(f"/{bob.username}/new-{uid()}/filter-objects", {"object_ids": [oid]})
    assert theirs.status == 404
    assert "only under your own name" in theirs.data["detail"] and alice.username in theirs.data["detail"]


def test_accounts_that_differ_only_in_case_cannot_create_in_each_others_name():
    lower = make_user(f"kim-{uid()}")
    upper = make_user(lower.username.upper())
    assert not may_create_under(upper, lower.username), "Kim must not plant repositories that /kim/... shows"
    assert may_create_under(upper, upper.username) and may_create_under(lower, lower.username)
    single = make_user(f"solo-{uid()}")
    assert may_create_under(single, single.username.upper()), "one account: its name in any case"
