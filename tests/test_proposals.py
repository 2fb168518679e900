"""Merge proposals (repos.services.proposals): every strategy, every conflict kind, permissions and the storage rule."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from musehub_core.errors import (
    AuthenticationRequired,
    BadRequest,
    BranchMoved,
    InvalidProposal,
    MergeConflict,
    NonFastForward,
    PermissionDenied,
    RepoNotFound,
)
from musehub_core.ids import blob_id, compute_commit_id, compute_snapshot_id
from repos import graph
from repos.manifests import load_manifest
from repos.models import (
    Collaborator,
    Commit,
    CommitGraph,
    CommitRef,
    Object,
    Proposal,
    ProposalState,
    Role,
    Snapshot,
    SnapshotRef,
)
from repos.selectors import branch_heads
from repos.services.commits import commit_files_to_repo
from repos.services.history import write_history
from repos.services.proposals import (
    apply_merge,
    close_proposal,
    create_proposal,
    merge_proposal,
    plan_merge,
    reopen_proposal,
    update_proposal,
)
from repos.services.repos import move_branch
from repos.storage.backend import record_storage_ops
from tests.factories import make_repo, make_user, timestamp, uid
from tests.httpkit import row_counts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def owner():
    return make_user(f"owner-{uid()}")


def commit(repo, branch: str, files: dict, message: str = "change") -> str:
    return commit_files_to_repo(repo.repo_id, branch=branch, files=files, message=message, author="tester")


def branch_off(repo, name: str, source: str = "main") -> None:
    with transaction.atomic():
        move_branch(repo, name, branch_heads(repo)[source])


def head(repo, name: str) -> str | None:
    return branch_heads(repo).get(name)


def tree(commit_id: str) -> dict[str, str]:
    return load_manifest(Commit.objects.get(commit_id=commit_id).snapshot_id)


def diverged(owner, *, base: dict, ours: dict, theirs: dict):
    """Return a repo where ``main`` and ``feat`` fork from one commit of *base* and then commit *ours*/*theirs*."""
    repo = make_repo(owner)
    commit(repo, "main", base, "base")
    branch_off(repo, "feat")
    if ours:
        commit(repo, "main", ours, "ours")
    if theirs:
        commit(repo, "feat", theirs, "theirs")
    return repo


def open_proposal(repo, author, **kwargs):
    kwargs.setdefault("title", "Bring in feat")
    kwargs.setdefault("from_branch", "feat")
    kwargs.setdefault("to_branch", "main")
    return create_proposal(repo.repo_id, acting_user=author, **kwargs)


def state_of(repo) -> tuple:
    return row_counts(), branch_heads(repo), list(Proposal.objects.filter(repo=repo).values_list("state", flat=True))


# --- creating -------------------------------------------------------------------------------------


def test_proposals_are_numbered_one_two_three_per_repository(owner):
    first, second = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"}), make_repo(owner)
    commit(second, "main", {"x": b"x"})
    branch_off(second, "feat")
    numbers = [open_proposal(first, owner).number for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert open_proposal(second, owner).number == 1


def test_a_proposal_records_the_source_head_and_the_merge_base(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={"m": b"m"}, theirs={"f": b"f"})
    fork = CommitGraph.objects.get(commit_id=head(repo, "feat")).parent_ids[0]
    proposal = open_proposal(repo, owner, body="Please merge.")
    assert proposal.head_commit_id == head(repo, "feat")
    assert proposal.base_commit_id == fork
    assert (proposal.state, proposal.author, proposal.body) == (ProposalState.OPEN, owner.username, "Please merge.")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"from_branch": "main", "to_branch": "main"}, InvalidProposal),
        ({"from_branch": "nope"}, InvalidProposal),
        ({"title": "  "}, InvalidProposal),
        ({"to_branch": "bad name"}, BadRequest),
    ],
)
def test_creating_a_proposal_checks_its_branches_and_title(owner, kwargs, error):
    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    with pytest.raises(error):
        open_proposal(repo, owner, **kwargs)
    assert not Proposal.objects.filter(repo=repo).exists()


def test_opening_a_proposal_needs_a_signed_in_reader(owner):
    from django.contrib.auth.models import AnonymousUser

    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    with pytest.raises(AuthenticationRequired):
        open_proposal(repo, AnonymousUser())
    assert open_proposal(repo, make_user()).number == 1, "any reader of a public repo may propose"
    secret = make_repo(owner, visibility="private")
    commit(secret, "main", {"a": b"1"})
    branch_off(secret, "feat")
    with pytest.raises(RepoNotFound):
        open_proposal(secret, make_user())


# --- merging: strategies --------------------------------------------------------------------------


def test_merge_makes_a_two_parent_commit_of_the_merged_tree_in_the_database_only(owner, backend):
    repo = diverged(owner, base={"a": b"1", "b": b"2"}, ours={"a": b"main"}, theirs={"b": b"feat", "c": b"new"})
    target, source = head(repo, "main"), head(repo, "feat")
    proposal = open_proposal(repo, owner)
    objects_before = Object.objects.count()
    with record_storage_ops() as ops:
        merged = merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    assert ops == [], "a merge reads no blob and writes nothing to object storage"
    assert Object.objects.count() == objects_before, "the merge reuses the blobs the repository holds"

    assert merged.state == ProposalState.MERGED and merged.merged_at is not None
    assert (merged.merge_strategy, merged.merged_by) == ("merge", owner.username)
    row = Commit.objects.get(commit_id=merged.merge_commit_id)
    assert head(repo, "main") == row.commit_id
    assert row.parent_ids == [target, source], "the target head comes first"
    assert row.message == f"Merge proposal #{proposal.number}: {proposal.title}"
    assert row.storage_uri is None
    assert tree(row.commit_id) == {"a": blob_id(b"main"), "b": blob_id(b"feat"), "c": blob_id(b"new")}
    snapshot = Snapshot.objects.get(snapshot_id=row.snapshot_id)
    assert snapshot.storage_uri is None
    assert snapshot.snapshot_id == compute_snapshot_id(tree(row.commit_id))
    assert row.commit_id == compute_commit_id(row.parent_ids, row.snapshot_id, row.message, row.committed_at)
    assert CommitRef.objects.filter(repo=repo, commit_id=row.commit_id).exists()
    assert SnapshotRef.objects.filter(repo=repo, snapshot_id=row.snapshot_id).exists()
    graph_row = CommitGraph.objects.get(commit_id=row.commit_id)
    assert graph_row.generation == 1 + max(graph.generations([target, source]).values())
    assert graph.is_ancestor(source, head(repo, "main"))


def test_squash_makes_one_commit_with_the_target_head_as_its_only_parent(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={"m": b"m"}, theirs={"f": b"f"})
    commit(repo, "feat", {"g": b"g"})
    target = head(repo, "main")
    proposal = open_proposal(repo, owner, title="Squash me")
    with record_storage_ops() as ops:
        merged = merge_proposal(repo.repo_id, proposal.proposal_id, strategy="squash", acting_user=owner)
    assert ops == []
    row = Commit.objects.get(commit_id=merged.merge_commit_id)
    assert row.parent_ids == [target]
    assert row.message == f"Squash proposal #{proposal.number}: Squash me"
    assert tree(row.commit_id) == {"a": blob_id(b"1"), "m": blob_id(b"m"), "f": blob_id(b"f"), "g": blob_id(b"g")}
    assert (row.storage_uri, Snapshot.objects.get(snapshot_id=row.snapshot_id).storage_uri) == (None, None)
    assert not graph.is_ancestor(head(repo, "feat"), head(repo, "main")), "a squash does not bring the source history"
    assert merged.merge_strategy == "squash" and head(repo, "main") == row.commit_id


def test_fast_forward_moves_the_target_to_the_source_head_without_a_commit(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    proposal = open_proposal(repo, owner)
    commits_before = Commit.objects.count()
    merged = merge_proposal(repo.repo_id, proposal.proposal_id, strategy="fast-forward", acting_user=owner)
    assert head(repo, "main") == head(repo, "feat") == merged.merge_commit_id
    assert Commit.objects.count() == commits_before


def test_fast_forward_is_refused_when_the_target_has_its_own_commits(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={"m": b"m"}, theirs={"f": b"f"})
    proposal = open_proposal(repo, owner)
    before = state_of(repo)
    with pytest.raises(NonFastForward, match="cannot be fast-forwarded"):
        merge_proposal(repo.repo_id, proposal.proposal_id, strategy="fast-forward", acting_user=owner)
    assert state_of(repo) == before


def test_merge_strategy_makes_a_merge_commit_even_when_a_fast_forward_was_possible(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    target, source = head(repo, "main"), head(repo, "feat")
    merged = merge_proposal(repo.repo_id, open_proposal(repo, owner).proposal_id, acting_user=owner)
    row = Commit.objects.get(commit_id=merged.merge_commit_id)
    assert row.parent_ids == [target, source]
    assert tree(row.commit_id) == tree(source)


def test_an_unknown_strategy_is_a_bad_request(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    with pytest.raises(BadRequest, match="strategy"):
        merge_proposal(repo.repo_id, open_proposal(repo, owner).proposal_id, strategy="octopus", acting_user=owner)


def test_a_missing_target_branch_is_created_at_the_source_head(owner):
    repo = make_repo(owner)
    commit(repo, "feat", {"a": b"1"})
    proposal = open_proposal(repo, owner, to_branch="release")
    assert proposal.base_commit_id is None
    merged = merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    assert head(repo, "release") == head(repo, "feat") == merged.merge_commit_id


def test_a_source_the_target_already_contains_merges_without_a_new_commit(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    proposal = open_proposal(repo, owner)
    with transaction.atomic():
        move_branch(repo, "main", head(repo, "feat"))  # someone pushed feat into main meanwhile
    commit(repo, "main", {"c": b"3"})
    commits_before = Commit.objects.count()
    merged = merge_proposal(repo.repo_id, proposal.proposal_id, strategy="squash", acting_user=owner)
    assert merged.state == ProposalState.MERGED and merged.merge_commit_id == head(repo, "main")
    assert Commit.objects.count() == commits_before


# --- merging: conflicts and races -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "conflicts"),
    [
        ({"a": b"1"}, {"a": b"main"}, {"a": b"feat"}, [("a", "both_modified")]),
        ({"a": b"1"}, {"n": b"main"}, {"n": b"feat"}, [("n", "both_added")]),
        ({"a": b"1"}, {"a": b"main"}, {"a": None}, [("a", "modified_deleted")]),
        ({"a": b"1"}, {"a": None}, {"a": b"feat"}, [("a", "deleted_modified")]),
        ({"a": b"1"}, {"d": b"file"}, {"d/x": b"dir"}, [("d", "file_directory")]),
        (
            {"a": b"1", "b": b"2"},
            {"a": b"m", "b": b"m", "ok": b"m"},
            {"a": b"f", "b": None, "fine": b"f"},
            [("a", "both_modified"), ("b", "modified_deleted")],
        ),
    ],
    ids=["both_modified", "both_added", "modified_deleted", "deleted_modified", "file_directory", "several"],
)
@pytest.mark.parametrize("strategy", ["merge", "squash"])
def test_a_conflicted_merge_lists_each_path_and_kind_and_changes_nothing(
    owner, base, ours, theirs, conflicts, strategy
):
    repo = diverged(owner, base=base, ours=ours, theirs=theirs)
    proposal = open_proposal(repo, owner)
    before = state_of(repo)
    with record_storage_ops() as ops, pytest.raises(MergeConflict) as caught:
        merge_proposal(repo.repo_id, proposal.proposal_id, strategy=strategy, acting_user=owner)
    assert [(c["path"], c["kind"]) for c in caught.value.data["conflicts"]] == conflicts
    assert state_of(repo) == before and ops == []
    proposal.refresh_from_db()
    assert proposal.state == ProposalState.OPEN and proposal.merge_commit_id is None


def test_a_target_that_moves_during_the_merge_fails_cleanly_and_a_retry_succeeds(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={"m": b"m"}, theirs={"f": b"f"})
    proposal = open_proposal(repo, owner)
    plan = plan_merge(repo.repo_id, proposal.proposal_id, acting_user=owner)
    moved_to = commit(repo, "main", {"late": b"push"})  # a push lands between planning and applying
    before = state_of(repo)
    with pytest.raises(BranchMoved, match="moved"):
        apply_merge(plan)
    assert state_of(repo) == before and head(repo, "main") == moved_to
    assert not Commit.objects.filter(commit_id=plan.new_head).exists()
    merged = merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    assert Commit.objects.get(commit_id=merged.merge_commit_id).parent_ids[0] == moved_to
    assert "late" in tree(merged.merge_commit_id)


def test_a_missing_target_created_during_the_merge_also_fails_cleanly(owner):
    repo = make_repo(owner)
    commit(repo, "feat", {"a": b"1"})
    proposal = open_proposal(repo, owner, to_branch="main")
    plan = plan_merge(repo.repo_id, proposal.proposal_id, acting_user=owner)
    commit(repo, "main", {"other": b"root"})
    with pytest.raises(BranchMoved):
        apply_merge(plan)


def test_a_proposal_merges_once(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={"m": b"m"}, theirs={"f": b"f"})
    proposal = open_proposal(repo, owner)
    plan = plan_merge(repo.repo_id, proposal.proposal_id, acting_user=owner)
    merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    with pytest.raises(InvalidProposal, match="merged"):
        merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    with pytest.raises(InvalidProposal, match="merged"):
        apply_merge(plan)


# --- permissions, closing, editing ----------------------------------------------------------------


def test_merging_needs_write_permission(owner):
    from django.contrib.auth.models import AnonymousUser

    repo = diverged(owner, base={"a": b"1"}, ours={"m": b"m"}, theirs={"f": b"f"})
    reader, writer = make_user(), make_user()
    Collaborator.objects.create(repo=repo, user=reader, role=Role.READ)
    Collaborator.objects.create(repo=repo, user=writer, role=Role.WRITE)
    proposal = open_proposal(repo, reader)
    before = state_of(repo)
    with pytest.raises(PermissionDenied):
        merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=reader)
    with pytest.raises(AuthenticationRequired):
        merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=AnonymousUser())
    assert state_of(repo) == before
    merged = merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=writer)
    assert merged.merged_by == writer.username


def test_strangers_cannot_see_proposals_of_private_repositories(owner):
    repo = make_repo(owner, visibility="private")
    commit(repo, "main", {"a": b"1"})
    branch_off(repo, "feat")
    proposal = open_proposal(repo, owner)
    stranger = make_user()
    for action in (
        lambda: merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=stranger),
        lambda: close_proposal(repo.repo_id, proposal.proposal_id, acting_user=stranger),
    ):
        with pytest.raises(RepoNotFound):
            action()


def test_close_and_reopen(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    proposal = open_proposal(repo, owner)
    closed = close_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    assert closed.state == ProposalState.CLOSED and closed.closed_at is not None
    with pytest.raises(InvalidProposal, match="closed"):
        merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    with pytest.raises(InvalidProposal):
        close_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    reopened = reopen_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    assert reopened.state == ProposalState.OPEN and reopened.closed_at is None
    with pytest.raises(InvalidProposal):
        reopen_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    with pytest.raises(InvalidProposal, match="merged"):
        reopen_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)


def test_the_author_may_edit_and_close_their_proposal_but_other_readers_may_not(owner):
    repo = diverged(owner, base={"a": b"1"}, ours={}, theirs={"b": b"2"})
    author, other = make_user(), make_user()
    proposal = open_proposal(repo, author)
    edited = update_proposal(repo.repo_id, proposal.proposal_id, acting_user=author, title="Better", body="Why")
    assert (edited.title, edited.body) == ("Better", "Why")
    with pytest.raises(PermissionDenied):
        update_proposal(repo.repo_id, proposal.proposal_id, acting_user=other, title="Mine now")
    with pytest.raises(PermissionDenied):
        close_proposal(repo.repo_id, proposal.proposal_id, acting_user=other)
    assert close_proposal(repo.repo_id, proposal.proposal_id, acting_user=author).state == ProposalState.CLOSED
    assert reopen_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner).state == ProposalState.OPEN


# --- long histories -------------------------------------------------------------------------------


def linear_history(repo, *, count: int, parent: str, snapshot_id: str, branch: str) -> list[str]:
    """Write *count* commits on top of *parent* (all with one tree) straight through write_history."""
    commits = []
    for i in range(count):
        at = timestamp()
        message = f"{branch} {i}"
        commit_id = compute_commit_id([parent], snapshot_id, message, at)
        commits.append(
            {
                "commit_id": commit_id,
                "parent_ids": [parent],
                "snapshot_id": snapshot_id,
                "branch": branch,
                "message": message,
                "author": "bulk",
                "committed_at": at,
                "metadata": {},
            }
        )
        parent = commit_id
    with transaction.atomic():
        write_history(repo, commits=commits, snapshots=[])
        move_branch(repo, branch, parent)
    return [c["commit_id"] for c in commits]


def test_the_merge_base_of_a_10000_commit_history_forked_near_the_root_is_found_fast(
    owner, django_assert_max_num_queries
):
    repo = make_repo(owner)
    root = commit(repo, "main", {"a": b"root"})
    fork = linear_history(repo, count=2, parent=root, snapshot_id=tree_snapshot(root), branch="main")[-1]
    branch_off(repo, "feat")
    commit(repo, "feat", {"feature": b"f"})
    main = linear_history(repo, count=10_000, parent=fork, snapshot_id=tree_snapshot(root), branch="main")
    assert CommitGraph.objects.get(commit_id=main[-1]).generation == 10_002

    started = time.perf_counter()
    with django_assert_max_num_queries(4):
        base = graph.merge_base(head(repo, "main"), head(repo, "feat"))
    elapsed = time.perf_counter() - started
    assert base == fork
    assert elapsed < 3.0, f"merge base took {elapsed:.2f}s"

    near = graph.merge_base(main[-1], main[-7])
    assert near == main[-7]

    proposal = open_proposal(repo, owner)
    assert proposal.base_commit_id == fork
    merged = merge_proposal(repo.repo_id, proposal.proposal_id, acting_user=owner)
    assert tree(merged.merge_commit_id) == {"a": blob_id(b"root"), "feature": blob_id(b"f")}


def tree_snapshot(commit_id: str) -> str:
    return Commit.objects.get(commit_id=commit_id).snapshot_id


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_merges_racing_into_one_branch_move_it_once(owner):
    """Both merges are planned from the same head; the branch row lock lets one win, the other fails cleanly."""
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite's shared in-memory test database reports table locks instead of waiting.")
    repo = diverged(owner, base={"a": b"1"}, ours={"m": b"m"}, theirs={"f": b"f"})
    branch_off(repo, "other", source="feat")
    commit(repo, "other", {"o": b"o"})
    first, second = open_proposal(repo, owner), open_proposal(repo, owner, from_branch="other")
    barrier = threading.Barrier(2)
    outcomes: dict[int, object] = {}

    def merge(number: int, proposal) -> None:
        try:
            plan = plan_merge(repo.repo_id, proposal.proposal_id, acting_user=owner)
            barrier.wait(timeout=30)
            outcomes[number] = apply_merge(plan).merge_commit_id
        except Exception as exc:  # the outcome is what the test checks
            outcomes[number] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=merge, args=(n, p)) for n, p in ((1, first), (2, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [v for v in outcomes.values() if isinstance(v, str)]
    losers = [v for v in outcomes.values() if isinstance(v, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], BranchMoved)
    assert head(repo, "main") == winners[0]
    assert sorted(Proposal.objects.filter(repo=repo).values_list("state", flat=True)) == ["merged", "open"]
