"""The Django admin: every page opens for staff, shows what matters, and cannot break the storage rule."""

from __future__ import annotations

import os

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse
from django.utils import timezone

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
def world(settings):
    """A repository pushed by a client, with server commits, a branch, a proposal, a collaborator and a token."""
    settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES = 4096  # off by default; on here so the cached pages show something
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


def test_verify_integrity_passes_sound_packs_and_clears_a_damage_mark(staff, world):
    packs = list(models.MPack.objects.values_list("mpack_id", flat=True))
    assert len(packs) == 2
    models.MPack.objects.filter(mpack_id=packs[0]).update(damaged_at=timezone.now())  # a streamed read's mark
    page = verify(staff, *packs)
    for mpack_id in packs:
        assert f"Pack {mpack_id} is sound" in page
    assert "FAILED" not in page
    assert not models.MPack.objects.filter(damaged_at__isnull=False).exists(), "sound again: the mark is gone"


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


# --- an admin an operator enjoys, on a hub of millions of rows (issues 13 and 16) -------------------


from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from repos import admin as repos_admin  # noqa: E402
from repos.services.proposals import merge_proposal  # noqa: E402


def test_the_admin_is_branded_and_says_branches():
    assert admin.site.site_header == "MuseHub administration"
    assert models.Branch._meta.verbose_name_plural == "branches"


def test_id_prefixes_become_index_ranges():
    oid = blob_id(b"x")
    assert repos_admin.id_prefix_range(oid) == (oid, None)
    assert repos_admin.id_prefix_range(oid[7:]) == (oid, None), "the sha256: prefix is optional"
    assert repos_admin.id_prefix_range("sha256:ab09") == ("sha256:ab09", "sha256:ab0a")
    assert repos_admin.id_prefix_range("abcf") == ("sha256:abcf", "sha256:abcg")
    assert repos_admin.id_prefix_range("abc") is None and repos_admin.id_prefix_range("notes.txt") is None


def test_search_by_an_id_prefix_finds_that_object_only(staff, world):
    oid = blob_id(TEXT)
    found = staff.get(changelist_url(models.Object), {"q": oid[:14]}).context["cl"]
    assert [o.object_id for o in found.result_list] == [oid]
    assert staff.get(changelist_url(models.MPackIndex), {"q": oid[7:20]}).context["cl"].result_count == 1


def test_text_search_of_a_big_table_needs_a_repository(staff, world, monkeypatch):
    monkeypatch.setattr(repos_admin, "SMALL_TABLE", -1)  # every table counts as big
    refused = staff.get(changelist_url(models.Object), {"q": "notes.txt"})
    assert refused.context["cl"].result_count == 0
    assert "choose a repository in the filter first" in refused.content.decode()
    within = staff.get(changelist_url(models.Object), {"q": "notes.txt", "repo": world["repo"].repo_id})
    assert within.context["cl"].result_count == 1


def test_lists_are_newest_first_filter_by_repository_and_name_it(staff, world):
    other = make_repo(make_user(), "elsewhere")
    commit_files_to_repo(other.repo_id, branch="main", files={"x.txt": b"x"}, message="elsewhere", author="y")
    page = staff.get(changelist_url(models.Commit))
    listed = list(page.context["cl"].result_list)
    assert listed[0].message == "elsewhere", "the newest commit comes first"
    assert [c.timestamp for c in listed] == sorted((c.timestamp for c in listed), reverse=True)
    mine = staff.get(changelist_url(models.Commit), {"repo": world["repo"].repo_id}).context["cl"]
    assert mine.result_count == 2 and {c.repo_name for c in mine.result_list} == {world["repo"].full_name}
    assert world["repo"].full_name in page.content.decode()
    for model in (models.Object, models.Snapshot, models.MPack, models.MPackIndex, models.ObjectRef):
        reply = staff.get(changelist_url(model), {"repo": other.repo_id})
        assert reply.status_code == 200 and reply.context["cl"].result_count >= 1, model


@pytest.mark.parametrize("model", [models.Object, models.Commit, models.MPackIndex, models.Snapshot])
def test_a_list_page_costs_the_same_queries_for_5_rows_as_for_40(staff, world, model):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff.get(changelist_url(model)).status_code == 200
        return len(captured)

    before = queries()
    for n in range(12):
        commit_files_to_repo(
            world["repo"].repo_id, branch="main", files={f"f{n}.bin": os.urandom(64)}, message=f"c{n}", author="z"
        )
    assert queries() == before


def test_a_big_list_is_never_counted_whole(staff, world, monkeypatch):
    monkeypatch.setattr(repos_admin, "COUNT_CAP", 2)
    with CaptureQueriesContext(connection) as captured:
        cl = staff.get(changelist_url(models.Object)).context["cl"]
    rows = models.Object.objects.count()
    assert rows > 3 and len(cl.result_list) == rows and cl.result_count >= 3
    if connection.vendor == "postgresql":  # past the cap, the planner's estimate stands in for a count
        counts = [q["sql"] for q in captured if "COUNT(" in q["sql"].upper() and "musehub_objects" in q["sql"]]
        assert counts and all("LIMIT" in sql.upper() for sql in counts), counts


def test_the_repository_page_shows_clone_url_size_commits_last_push_and_recent_commits(staff, world):
    repo = world["repo"]
    page = staff.get(change_url(repo)).content.decode()
    assert f"http://testserver/{repo.owner}/{repo.slug}" in page
    assert "client root" in page, "the default branch's recent commits"
    pushed = sum(models.MPack.objects.filter(repo=repo).exclude(kind="fetch").values_list("size_bytes", flat=True))
    assert repos_admin.size(pushed) in page
    assert "Last push" in page and "Commits" in page
    assert f"?repo={quote(repo.repo_id).replace('_3A', '%3A')}" in page or "repo=sha256%3A" in page
    assert ">View<" not in page, "inline rows link their names instead of a View column"


def change_form_data(staff, obj) -> dict:
    """Return the POST data the change page of *obj* would send unchanged (its form and every inline formset)."""
    context = staff.get(change_url(obj)).context
    data = {}
    form = context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[name] = "" if value is None else value
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[formset.management_form.add_prefix(name)] = value
        for sub in formset.forms:
            for name, field in sub.fields.items():
                value = sub.initial.get(name, field.initial)
                if hasattr(value, "pk"):
                    value = value.pk
                data[sub.add_prefix(name)] = "" if value is None else value
    return data


def test_an_admin_edit_checks_the_default_branch_and_moves_updated_at(staff, world):
    repo = world["repo"]
    before = repo.updated_at
    form = {**change_form_data(staff, repo), "description": "edited", "default_branch": "nope"}
    refused = staff.post(change_url(repo), form)
    assert refused.status_code == 200 and "has no branch" in refused.content.decode()
    repo.refresh_from_db()
    assert repo.description != "edited"
    accepted = staff.post(change_url(repo), {**form, "default_branch": "feat"})
    assert accepted.status_code == 302, accepted.context["adminform"].form.errors
    repo.refresh_from_db()
    assert (repo.description, repo.default_branch) == ("edited", "feat") and repo.updated_at > before


def test_the_snapshot_page_pages_through_a_big_manifest_and_filters_by_folder(staff, world):
    files = {f"big/{n:04d}.txt": f"{n}".encode() for n in range(1_200)}
    files.update({"other/a.txt": b"a", "top.txt": b"t"})
    head = commit_files_to_repo(world["repo"].repo_id, branch="wide", files=files, message="wide", author="w")
    snapshot = models.Snapshot.objects.get(snapshot_id=models.Commit.objects.get(commit_id=head).snapshot_id)
    first = staff.get(change_url(snapshot)).content.decode()
    assert "page 1 of 3" in first and "big/0000.txt" in first and "big/0600.txt" not in first
    assert "big/</a> (1,200 paths)" in first and "next" in first
    second = staff.get(change_url(snapshot), {"page": "2"}).content.decode()
    assert "big/0600.txt" in second and "big/0000.txt" not in second
    folder = staff.get(change_url(snapshot), {"folder": "other"}).content.decode()
    assert "other/a.txt" in folder and "big/0000.txt" not in folder and "1 path under other/." in folder


def test_the_mpack_page_shows_paths_and_readable_sizes_and_counts(staff, world):
    pack = models.MPack.objects.get(kind="server")
    page = staff.get(change_url(pack)).content.decode()
    assert "notes.txt" in page and "blob.bin" in page, "paths beside the index entries"
    assert "8.8 KiB" in page, "human-readable sizes"
    sound = verify(staff, pack.mpack_id)
    assert "all 2 index entries decode" in sound and "(2 blobs verified)" in sound
    assert "all 0" not in sound


def test_a_merged_proposal_shows_the_head_when_opened_and_the_head_merged(staff, world):
    proposal = world["proposal"]
    opened = proposal.head_commit_id
    later = commit_files_to_repo(
        world["repo"].repo_id, branch="feat", files={"later.txt": b"later"}, message="later", author="x"
    )
    merge_proposal(world["repo"].repo_id, proposal.proposal_id, strategy="merge", acting_user=world["repo"].owner_user)
    page = staff.get(change_url(proposal)).content.decode()
    assert "Source head when opened" in page and "Source head merged" in page
    assert repos_admin.short(opened) in page and repos_admin.short(later) in page


def test_packs_are_found_by_their_repository_name(staff, world):
    found = staff.get(changelist_url(models.MPack), {"q": world["repo"].owner}).context["cl"]
    assert found.result_count == models.MPack.objects.filter(repo=world["repo"]).count() >= 1


def test_a_search_that_is_not_an_id_says_how_to_search_by_id(staff, world):
    reply = staff.get(changelist_url(models.Snapshot), {"q": "notes"})
    assert reply.context["cl"].result_count == 0
    assert "Snapshots are searched by id: a full id or at least 4 hex digits of one." in reply.content.decode()


def test_content_lists_offer_no_facet_counts(staff, world):
    reply = staff.get(changelist_url(models.Object), {"_facets": "True"})
    assert reply.status_code == 200 and "Show counts" not in reply.content.decode()
