"""Deleting branches (branches are created and moved by pushes and merges: ``repos.services.repos.move_branch``)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from musehub_core.errors import BranchInUse, DefaultBranch, RefNotFound
from repos.access import User, require
from repos.models import Branch, Proposal, ProposalState, Repo, Role


def delete_branch(repo: Repo, *, name: str, acting_user: User | None) -> Branch:
    """Delete branch *name* of *repo* and return it as it was. Needs the write role.

    Only the ref goes: the branch's commits stay in the repository (fetchable by
    id, and named by releases and tags). Refuses (409) the default branch and a
    branch an open proposal merges from or into; RefNotFound (404) for a branch
    *repo* does not have. The branch row is locked first, then the repository
    row, the order a push takes them in, so a concurrent push or merge either
    finishes first or finds the branch gone (and creates it again).
    """
    require(acting_user, repo, Role.WRITE)
    with transaction.atomic():
        branch = Branch.objects.select_for_update().filter(repo=repo, name=name).first()
        if branch is None:
            raise RefNotFound(f"No branch {name!r:.120} in {repo.full_name}.")
        # The repository row lock orders this against proposals being opened (their numbering takes it).
        default = Repo.objects.select_for_update().filter(pk=repo.pk).values_list("default_branch", flat=True).first()
        if name == default:
            raise DefaultBranch(
                f"{name!r:.120} is the default branch of {repo.full_name} and cannot be deleted; "
                "make another branch the default first.",
                branch=name,
            )
        using = list(
            Proposal.objects.filter(repo=repo, state=ProposalState.OPEN)
            .filter(Q(from_branch=name) | Q(to_branch=name))
            .order_by("number")
            .values_list("number", flat=True)
        )
        if using:
            listed = ", ".join(f"#{n}" for n in using)
            several = len(using) > 1
            raise BranchInUse(
                f"Branch {name!r:.120} is used by open proposal{'s' if several else ''} {listed} of "
                f"{repo.full_name}; merge or close {'them' if several else 'it'} first.",
                branch=name,
                proposals=using,
            )
        Branch.objects.filter(pk=branch.pk).delete()
    return branch
