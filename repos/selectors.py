"""Read-side lookups: repositories, branches and refs, each raising a domain NotFound."""

from __future__ import annotations

from repos.errors import RefNotFound, RepoNotFound
from repos.ids import is_hex, is_id
from repos.models import Branch, CommitRef, Repo


def repo_by_id(repo_id: str) -> Repo:
    try:
        return Repo.objects.get(repo_id=repo_id)
    except Repo.DoesNotExist:
        raise RepoNotFound(f"No repository with id {repo_id}.") from None


def repo_by_name(owner: str, slug: str) -> Repo:
    try:
        return Repo.objects.select_related("owner_user").get(owner=owner, slug=slug)
    except Repo.DoesNotExist:
        raise RepoNotFound(f"Repository {owner}/{slug} not found.") from None


def branch_heads(repo: Repo) -> dict[str, str]:
    """Return {branch name: head commit id} for every branch of *repo* that has a head."""
    rows = Branch.objects.filter(repo=repo, head_commit_id__isnull=False).order_by("name")
    return dict(rows.values_list("name", "head_commit_id"))


def resolve_ref(repo: Repo, ref: str) -> str:
    """Return the commit id *ref* names in *repo*: a branch name, or a commit id (prefixed or bare hex)."""
    head = Branch.objects.filter(repo=repo, name=ref).values_list("head_commit_id", flat=True).first()
    if head:
        return head
    candidate = "sha256:" + ref if is_hex(ref) else ref
    if is_id(candidate) and CommitRef.objects.filter(repo=repo, commit_id=candidate).exists():
        return candidate
    raise RefNotFound(f"{ref!r} is neither a branch nor a commit of {repo.full_name}.")
