"""The Django admin: every page opens for staff, shows what matters, and cannot break the storage rule."""

from __future__ import annotations

import os

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from musehub_core.ids import blob_id
from repos import models
from repos.services.commits import commit_files_to_repo
from repos.services.proposals import create_proposal
from repos.services.releases import TagInput, create_release, publish_domain, push_tags
from repos.services.tokens import issue_token
from repos.storage.backend import get_backend
from tests.factories import History, build_pack, make_repo, make_user, push_history, uid
from wire.push import create_mpack_upload

pytestmark = pytest.mark.django_db

TEXT = b"A readable line of text.\n" * 200  # 5,000 bytes: past the cache limit, still previewed as text
BINARY = os.urandom(9_000)
CONTENT_MODELS = [
    models.Commit, models.CommitRef, models.CommitGraph, models.Snapshot, models.SnapshotRef,
    models.Object, models.ObjectRef, models.MPack, models.MPackIndex,
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff():
    client = Client()
    client.force_login(make_user(f"admin-{uid()}", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def world():
    """A repository pushed by a client, with server commits, a branch, a proposal, a collaborator and a token."""
    owner = make_user(f"owner-{uid()}")
    repo = make_repo(owner, "inspected")
    history = History()
    history.commit({"README.md": b"# Inspected\n", "src/main.py": b"print('hi')\n"}, message="client root")
    push_history(repo, history, branch="main", zstd=True)
    feat = commit_files_to_repo(
        repo.repo_id, branch="feat", files={"notes.txt": TEXT, "blob.bin": BINARY}, message="server commit", author="x"
    )
    proposal = create_proposal(
        repo.repo_id, title="Bring notes in", from_branch="feat", to_branch="main", acting_user=owner
    )
    collaborator = models.Collaborator.objects.create(repo=repo, user=make_user(), role=models.Role.WRITE)
    token, clear = issue_token(owner, name="laptop")
    models.StagedObject.objects.create(repo=repo, object_id=blob_id(b"staged"))
    create_mpack_upload(repo, mpack_key=blob_id(b"pending"), size=7, user=owner)  # a slot not pushed yet
    create_release(repo, tag="v1.0.0", commit_id=feat, title="First take", acting_user=owner)
    push_tags(repo, tags=[TagInput(name="stage:master", commit_id=feat)], acting_user=owner)
    publish_domain(
        acting_user=owner,
        author_slug=owner.username,
        slug="genomics",
        display_name="Genomics",
        version="0.1.0",
        capabilities={"merge_semantics": "three_way"},
    )
    return {
        "repo": repo,
        "feat": feat,
        "proposal": proposal,
        "collaborator": collaborator,
        "token": token,
        "clear": clear,
    }


def change_url(obj) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[quote(obj.pk)])


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def repos_models():
    return [m for m in admin.site._registry if m._meta.app_label == "repos"]


def test_every_model_of_the_app_is_registered():
    from django.apps import apps

    assert set(apps.get_app_config("repos").get_models()) <= set(repos_models())


def test_every_changelist_and_change_page_opens(staff, world):
    for model in repos_models():
        reply = staff.get(changelist_url(model))
        assert reply.status_code == 200, model
        row = model.objects.first()
        assert row is not None, f"the fixture should create a {model.__name__}"
        page = staff.get(change_url(row))
        assert page.status_code == 200, model


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (models.Repo, "inspected"),
        (models.Commit, "server commit"),
        (models.Branch, "feat"),
        (models.Proposal, "notes"),
        (models.Object, "notes.txt"),
        (models.ApiToken, "laptop"),
    ],
)
def test_changelists_search(staff, world, model, query):
    reply = staff.get(changelist_url(model), {"q": query})
    assert reply.status_code == 200
    assert reply.context["cl"].result_count >= 1


def test_search_finds_commits_and_objects_by_id(staff, world):
    reply = staff.get(changelist_url(models.Commit), {"q": world["feat"]})
    assert reply.context["cl"].result_count == 1
    reply = staff.get(changelist_url(models.Object), {"q": blob_id(TEXT)})
    assert reply.context["cl"].result_count == 1


def test_filters_work(staff, world):
    cached = staff.get(changelist_url(models.Object), {"cached": "yes"}).context["cl"]
    assert cached.result_count == 2, "the two small client files are cached"
    assert staff.get(changelist_url(models.Object), {"storage": "mpack"}).context["cl"].result_count == 4
    assert staff.get(changelist_url(models.MPack), {"kind__exact": "server"}).context["cl"].result_count == 1
    assert staff.get(changelist_url(models.Proposal), {"state__exact": "open"}).context["cl"].result_count == 1
    commits = staff.get(changelist_url(models.Commit), {"storage_uri__isempty": "0"}).context["cl"]
    assert commits.result_count == 0, "no commit breaks the storage rule"


def test_the_repository_page_shows_its_branches_proposals_and_collaborators(staff, world):
    page = staff.get(change_url(world["repo"])).content.decode()
    assert "feat" in page and "main" in page
    assert "Bring notes in" in page
    assert world["collaborator"].user.username in page


def test_the_snapshot_page_shows_the_manifest_linked_to_objects(staff, world):
    snapshot = models.Snapshot.objects.get(snapshot_id=models.Commit.objects.get(commit_id=world["feat"]).snapshot_id)
    page = staff.get(change_url(snapshot)).content.decode()
    for path in ("notes.txt", "blob.bin"):
        assert path in page
    assert change_url(models.Object.objects.get(object_id=blob_id(TEXT))) in page
    assert "2 paths." in page


def test_the_object_page_shows_where_it_lives_and_previews_text(staff, world):
    text = models.Object.objects.get(object_id=blob_id(TEXT))
    index = models.MPackIndex.objects.get(entity_id=text.object_id)
    page = staff.get(change_url(text)).content.decode()
    assert change_url(models.MPack.objects.get(mpack_id=index.mpack_id)) in page
    assert f"<td>{index.offset}</td>" in page and f"<td>{index.length}</td>" in page
    assert "cached: no" in page
    assert "A readable line of text." in page and "First 4096 of 5000 bytes." in page

    binary = staff.get(change_url(models.Object.objects.get(object_id=blob_id(BINARY)))).content.decode()
    assert "Binary content (9000 bytes)" in binary

    cached = models.Object.objects.get(object_id=blob_id(b"# Inspected\n"))
    page = staff.get(change_url(cached)).content.decode()
    assert "cached: yes" in page and "# Inspected" in page and "<td>zstd</td>" in page


def test_the_commit_page_links_its_snapshot_and_shows_its_changes(staff, world):
    row = models.Commit.objects.get(commit_id=world["feat"])
    page = staff.get(change_url(row)).content.decode()
    assert change_url(models.Snapshot.objects.get(snapshot_id=row.snapshot_id)) in page
    assert "notes.txt" in page and "added" in page
    assert "inspected" in page, "the repositories that see the commit"


def test_the_mpack_page_lists_its_index_entries(staff, world):
    pack = models.MPack.objects.get(kind="server")
    page = staff.get(change_url(pack)).content.decode()
    assert "2 index entries." in page
    assert change_url(models.Object.objects.get(object_id=blob_id(BINARY))) in page
    assert "In storage" in page and '<div class="readonly">yes</div>' in page


def test_the_token_page_never_shows_the_whole_hash_or_the_token(staff, world):
    token = world["token"]
    page = staff.get(change_url(token)).content.decode()
    assert token.token_hash not in page and world["clear"] not in page
    assert token.token_hash[:8] in page


# --- the storage rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", CONTENT_MODELS, ids=lambda m: m.__name__)
def test_content_rows_cannot_be_added_changed_or_deleted(staff, world, model):
    row = model.objects.first()
    add = reverse(f"admin:repos_{model._meta.model_name}_add")
    delete = reverse(f"admin:repos_{model._meta.model_name}_delete", args=[quote(row.pk)])
    assert staff.get(add).status_code == 403
    assert staff.get(delete).status_code == 403
    assert staff.post(change_url(row), {"storage_uri": "s3://elsewhere"}).status_code == 403
    page = staff.get(change_url(row)).content.decode()
    assert 'name="_save"' not in page, "a read-only page has no save button"


def test_content_ids_and_storage_uris_stay_put(staff, world):
    obj = models.Object.objects.get(object_id=blob_id(TEXT))
    staff.post(change_url(obj), {"object_id": "sha256:" + "0" * 64, "storage_uri": "s3://x"})
    obj.refresh_from_db()
    assert obj.storage_uri.startswith("mpack://")
    branch = models.Branch.objects.get(repo=world["repo"], name="feat")
    assert staff.post(change_url(branch), {"head_commit_id": "sha256:" + "1" * 64}).status_code == 403
    assert models.Branch.objects.get(pk=branch.pk).head_commit_id == world["feat"]


def test_a_proposal_title_is_editable_and_its_state_moves_only_through_actions(staff, world):
    proposal = world["proposal"]
    reply = staff.post(change_url(proposal), {"title": "Renamed", "body": "Now with a body", "state": "merged"})
    assert reply.status_code == 302
    proposal.refresh_from_db()
    assert (proposal.title, proposal.body, proposal.state) == ("Renamed", "Now with a body", "open")
    reply = staff.post(
        changelist_url(models.Proposal), {"action": "close", "_selected_action": [str(proposal.pk)]}, follow=True
    )
    assert "Closed 1 proposal(s)." in reply.content.decode()
    proposal.refresh_from_db()
    assert proposal.state == "closed"


def test_tokens_are_revoked_by_an_action(staff, world):
    token = world["token"]
    reply = staff.post(
        changelist_url(models.ApiToken), {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "Revoked 1 token(s)." in reply.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None


# --- verifying packs ------------------------------------------------------------------------------


def verify(staff, *mpack_ids: str) -> str:
    reply = staff.post(
        changelist_url(models.MPack),
        {"action": "verify_integrity", "_selected_action": list(mpack_ids)},
        follow=True,
    )
    assert reply.status_code == 200
    return reply.content.decode()


def test_verify_integrity_passes_sound_packs(staff, world):
    packs = list(models.MPack.objects.values_list("mpack_id", flat=True))
    assert len(packs) == 2
    page = verify(staff, *packs)
    for mpack_id in packs:
        assert f"Pack {mpack_id} is sound" in page
    assert "FAILED" not in page


def test_verify_integrity_reports_a_corrupted_pack(staff, world):
    pack = models.MPack.objects.get(kind="server")
    other = build_pack(blobs={blob_id(b"other"): b"other"})
    get_backend().put_mpack(pack.mpack_id, other)
    page = verify(staff, pack.mpack_id)
    assert f"Pack {pack.mpack_id} FAILED" in page
    assert f"hash to {blob_id(other)}, not to its key" in page
    assert "the pack does not hold that object" in page


def test_verify_integrity_reports_garbage_and_missing_packs(staff, world):
    server = models.MPack.objects.get(kind="server")
    pushed = models.MPack.objects.get(kind="push")
    get_backend().put_mpack(server.mpack_id, b"not an mpack at all")
    get_backend().delete_mpack(pushed.mpack_id)
    page = verify(staff, server.mpack_id, pushed.mpack_id)
    assert f"Pack {server.mpack_id} FAILED" in page and "is damaged" in page
    assert f"Pack {pushed.mpack_id} FAILED" in page and "missing from storage" in page
