"""Merge proposals: open, edit, close, reopen, and merge one branch of a repository into another.

Merging is planned, then applied. :func:`plan_merge` reads the two heads,
their merge base (``repos.graph``, generation numbers) and their manifests, and
builds the merge commit with the docs/wire.md §1 id formulas; nothing is written.
:func:`apply_merge` then, in one transaction, locks the proposal and the target
branch row, checks the target still points where the plan started from (else
BranchMoved, and nothing changes), writes the commit and its snapshot through
``record_history`` (database only: ``storage_uri`` NULL; the blobs are the ones
the repository already holds, so no blob row or mpack is written) and moves
the branch with ``move_branch``, the compare-and-swap a push uses.
:func:`merge_proposal` does both.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.db import transaction
from django.db.models import Max, TextChoices

from musehub_core.errors import (
    AuthenticationRequired,
    BadRequest,
    BranchMoved,
    IntegrityError,
    InvalidProposal,
    NonFastForward,
    NotFound,
)
from musehub_core.ids import compute_snapshot_id
from musehub_core.manifests import snapshot_dict
from musehub_core.merge import merge_manifests
from musehub_core.records import CommitDict, commit_record
from repos import graph
from repos.access import require
from repos.models import Branch, Proposal, ProposalState, Repo, Role
from repos.selectors import branch_heads, manifests_of_commits, repo_by_id
from repos.services.history import record_history
from repos.services.repos import move_branch, validate_branch_name

User = Account | AnonymousUser
TITLE_MAX = 300


class MergeStrategy(TextChoices):
    MERGE = "merge", "Merge commit (two parents)"
    SQUASH = "squash", "Squash into one commit (one parent)"
    FAST_FORWARD = "fast-forward", "Fast-forward only"


def _proposal(repo: Repo, proposal_id: uuid.UUID | str) -> Proposal:
    proposal = Proposal.objects.filter(repo=repo, proposal_id=proposal_id).first()
    if proposal is None:
        raise NotFound(f"No proposal {proposal_id} in {repo.full_name}.")
    return proposal


def _require_signed_in(user: User | None, action: str) -> Account:
    if user is None or not user.is_authenticated:
        raise AuthenticationRequired(f"{action} needs a token: send 'Authorization: Bearer <token>'.")
    return user


def _require_author_or_writer(user: User | None, repo: Repo, proposal: Proposal, action: str) -> None:
    """Let the proposal's author, or anyone who may write to *repo*, change it."""
    require(user, repo, Role.READ)
    user = _require_signed_in(user, action)
    if user.get_username() != proposal.author:
        require(user, repo, Role.WRITE)


def _clean_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidProposal("A proposal needs a title.")
    title = title.strip()
    if len(title) > TITLE_MAX:
        raise InvalidProposal(f"A proposal title holds at most {TITLE_MAX} characters.")
    return title


def create_proposal(
    repo_id: str,
    *,
    title: str,
    from_branch: str,
    to_branch: str,
    body: str = "",
    acting_user: User,
) -> Proposal:
    """Open a proposal to merge *from_branch* into *to_branch* and return it.

    *acting_user* (the proposal's author) must be signed in and able to read the repository. The branches
    must differ and *from_branch* must exist (*to_branch* may not exist yet:
    merging creates it). Records the source head and the merge base; numbers
    proposals 1, 2, 3 … per repository. Raises InvalidProposal otherwise.
    """
    repo = repo_by_id(repo_id)
    require(acting_user, repo, Role.READ)
    author = _require_signed_in(acting_user, "Opening a proposal")
    title = _clean_title(title)
    validate_branch_name(from_branch)
    validate_branch_name(to_branch)
    if from_branch == to_branch:
        raise InvalidProposal("A proposal merges one branch into another: from_branch and to_branch must differ.")
    heads = branch_heads(repo)
    source = heads.get(from_branch)
    if source is None:
        raise InvalidProposal(f"Branch {from_branch!r} does not exist in {repo.full_name}.")
    target = heads.get(to_branch)
    base = graph.merge_base(target, source) if target else None
    with transaction.atomic():
        # The repository row lock serialises numbering between concurrent openers.
        Repo.objects.select_for_update().filter(pk=repo.pk).first()
        number = (Proposal.objects.filter(repo=repo).aggregate(top=Max("number"))["top"] or 0) + 1
        return Proposal.objects.create(
            repo=repo,
            number=number,
            title=title,
            body=body or "",
            from_branch=from_branch,
            to_branch=to_branch,
            base_commit_id=base,
            head_commit_id=source,
            author=author.get_username(),
        )


def update_proposal(
    repo_id: str,
    proposal_id: uuid.UUID | str,
    *,
    acting_user: User,
    title: str | None = None,
    body: str | None = None,
) -> Proposal:
    """Change the title and/or body of a proposal (its author or a writer may)."""
    repo = repo_by_id(repo_id)
    proposal = _proposal(repo, proposal_id)
    _require_author_or_writer(acting_user, repo, proposal, "Editing a proposal")
    fields = ["updated_at"]
    if title is not None:
        proposal.title = _clean_title(title)
        fields.append("title")
    if body is not None:
        proposal.body = body
        fields.append("body")
    proposal.save(update_fields=fields)
    return proposal


def close_proposal(repo_id: str, proposal_id: uuid.UUID | str, *, acting_user: User) -> Proposal:
    """Close an open proposal without merging it (its author or a writer may)."""
    repo = repo_by_id(repo_id)
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update().filter(pk=_proposal(repo, proposal_id).pk).get()
        _require_author_or_writer(acting_user, repo, proposal, "Closing a proposal")
        if proposal.state != ProposalState.OPEN:
            raise InvalidProposal(f"Proposal #{proposal.number} is {proposal.state}; only open proposals close.")
        proposal.state = ProposalState.CLOSED
        proposal.closed_at = dt.datetime.now(dt.UTC)
        proposal.save(update_fields=["state", "closed_at", "updated_at"])
    return proposal


def reopen_proposal(repo_id: str, proposal_id: uuid.UUID | str, *, acting_user: User) -> Proposal:
    """Reopen a closed proposal (a merged one stays merged)."""
    repo = repo_by_id(repo_id)
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update().filter(pk=_proposal(repo, proposal_id).pk).get()
        _require_author_or_writer(acting_user, repo, proposal, "Reopening a proposal")
        if proposal.state != ProposalState.CLOSED:
            raise InvalidProposal(f"Proposal #{proposal.number} is {proposal.state}; only closed proposals reopen.")
        proposal.state = ProposalState.OPEN
        proposal.closed_at = None
        proposal.save(update_fields=["state", "closed_at", "updated_at"])
    return proposal


@dataclass(frozen=True)
class MergePlan:
    """What merging a proposal will do, computed from the heads as they were read.

    ``new_head`` is where the target branch will point; ``commit`` and
    ``snapshot`` (wire-format dicts, as ``record_history`` takes them) are set
    only when the merge makes a new commit.
    """

    repo_id: str
    proposal_id: uuid.UUID
    strategy: str
    target_branch: str
    target_head: str | None
    source_head: str
    new_head: str
    merged_by: str
    commit: CommitDict | None = None
    snapshot: dict[str, Any] | None = None


def plan_merge(
    repo_id: str,
    proposal_id: uuid.UUID | str,
    *,
    strategy: str = MergeStrategy.MERGE,
    acting_user: User,
) -> MergePlan:
    """Compute the merge of an open proposal without writing anything.

    Needs write permission. ``fast-forward`` only moves the target to the
    source head and raises NonFastForward unless the target head is its
    ancestor; ``merge`` makes a commit with parents [target head, source head];
    ``squash`` one with the single parent [target head]; both carry the
    three-way merge of the two trees (MergeConflict lists every conflicting
    path). A missing target branch is created at the source head, and a source
    the target already contains merges without a new commit, whatever the strategy.
    """
    repo = repo_by_id(repo_id)
    require(acting_user, repo, Role.WRITE)
    merger = _require_signed_in(acting_user, "Merging a proposal")
    if strategy not in MergeStrategy.values:
        raise BadRequest(f"strategy must be one of {', '.join(MergeStrategy.values)}.")
    proposal = _proposal(repo, proposal_id)
    if proposal.state != ProposalState.OPEN:
        raise InvalidProposal(f"Proposal #{proposal.number} is {proposal.state}; only open proposals merge.")
    heads = branch_heads(repo)
    source = heads.get(proposal.from_branch)
    if source is None:
        raise InvalidProposal(f"Branch {proposal.from_branch!r} no longer exists; nothing to merge.")
    target = heads.get(proposal.to_branch)
    plan = {
        "repo_id": repo.repo_id,
        "proposal_id": proposal.proposal_id,
        "strategy": strategy,
        "target_branch": proposal.to_branch,
        "target_head": target,
        "source_head": source,
        "merged_by": merger.get_username(),
    }
    if target is None:
        return MergePlan(**plan, new_head=source)
    if graph.is_ancestor(source, target):
        return MergePlan(**plan, new_head=target)  # already merged: nothing to add
    if strategy == MergeStrategy.FAST_FORWARD:
        if not graph.is_ancestor(target, source):
            raise NonFastForward(
                f"Branch {proposal.to_branch!r} has commits {proposal.from_branch!r} lacks, so it cannot be "
                "fast-forwarded; merge or squash instead.",
                branch=proposal.to_branch,
                remote_head=target,
            )
        return MergePlan(**plan, new_head=source)
    commit, snapshot = _merge_commit(proposal, strategy, target=target, source=source, author=plan["merged_by"])
    return MergePlan(**plan, new_head=commit["commit_id"], commit=commit, snapshot=snapshot)


def _merge_commit(
    proposal: Proposal, strategy: str, *, target: str, source: str, author: str
) -> tuple[CommitDict, dict[str, Any]]:
    """Return the (commit, snapshot) dicts of merging *source* into *target*; raise MergeConflict."""
    base = graph.merge_base(target, source)
    manifests = manifests_of_commits([c for c in (base, target, source) if c])
    for commit_id in (base, target, source):
        if commit_id and commit_id not in manifests:
            raise IntegrityError(f"Commit {commit_id} is missing from the commit graph; run musehub_fsck.")
    merged = merge_manifests(manifests[base] if base else {}, manifests[target], manifests[source])
    snapshot = snapshot_dict(compute_snapshot_id(merged), merged)
    if strategy == MergeStrategy.SQUASH:
        parents, verb = [target], "Squash"
    else:
        parents, verb = [target, source], "Merge"
    commit = commit_record(
        parent_ids=parents,
        snapshot_id=snapshot["snapshot_id"],
        branch=proposal.to_branch,
        message=f"{verb} proposal #{proposal.number}: {proposal.title}",
        author=author,
        metadata={},
    )
    return commit, snapshot


def apply_merge(plan: MergePlan) -> Proposal:
    """Write what *plan* computed and move the target branch, all in one transaction.

    Raises BranchMoved when the target branch no longer points where the plan
    started from, and InvalidProposal when the proposal is no longer open; in
    both cases nothing changes.
    """
    repo = repo_by_id(plan.repo_id)
    with transaction.atomic():
        proposal = Proposal.objects.select_for_update().get(pk=plan.proposal_id)
        if proposal.state != ProposalState.OPEN:
            raise InvalidProposal(f"Proposal #{proposal.number} is {proposal.state}; only open proposals merge.")
        current = (
            Branch.objects.select_for_update()
            .filter(repo=repo, name=plan.target_branch)
            .values_list("head_commit_id", flat=True)
            .first()
        )
        if current != plan.target_head:
            raise BranchMoved(
                f"Branch {plan.target_branch!r} moved from {plan.target_head or 'nothing'} to {current} while "
                "the merge was being prepared; nothing was changed. Merge again.",
                branch=plan.target_branch,
            )
        if plan.commit is not None and plan.snapshot is not None:
            record_history(repo, commits=[plan.commit], snapshots=[plan.snapshot])
        if plan.new_head != current:
            move_branch(repo, plan.target_branch, plan.new_head)
        proposal.state = ProposalState.MERGED
        proposal.merge_commit_id = plan.new_head
        proposal.merge_strategy = plan.strategy
        proposal.merged_by = plan.merged_by
        proposal.merged_at = dt.datetime.now(dt.UTC)
        proposal.save(
            update_fields=["state", "merge_commit_id", "merge_strategy", "merged_by", "merged_at", "updated_at"]
        )
    return proposal


def merge_proposal(
    repo_id: str,
    proposal_id: uuid.UUID | str,
    *,
    strategy: str = MergeStrategy.MERGE,
    acting_user: User,
) -> Proposal:
    """Merge an open proposal with *strategy* and return it, now ``merged``.

    ``merge_commit_id`` is the commit the target branch points at afterwards.
    Raises PermissionDenied/RepoNotFound without write permission, MergeConflict
    (with ``conflicts``), NonFastForward, BranchMoved or InvalidProposal; on any
    error nothing changes. See :func:`plan_merge` and :func:`apply_merge`.
    """
    return apply_merge(plan_merge(repo_id, proposal_id, strategy=strategy, acting_user=acting_user))
