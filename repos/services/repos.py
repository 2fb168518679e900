"""Create repositories and move their branches."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from musehub_core.errors import (
    AuthenticationRequired,
    BadRequest,
    BranchNameClash,
    Conflict,
    NonFastForward,
    NotFound,
    RefNotFound,
    RepoNotFound,
)
from musehub_core.ids import compute_branch_id, compute_identity_id, compute_repo_id
from repos import graph
from repos.access import User, repo_for, reserved_owners
from repos.models import Branch, Collaborator, CommitRef, Repo, Role, Visibility, slug_validator


def create_repo(
    *,
    owner: AbstractBaseUser | str,
    slug: str,
    name: str = "",
    visibility: str = Visibility.PUBLIC,
    description: str = "",
    default_branch: str = "main",
    domain: str = "code",
) -> Repo:
    """Create and return repository ``owner/slug``.

    *owner* is a user (or, for fixtures, a bare username). Raises BadRequest
    for an invalid slug or visibility and Conflict when the name is taken.
    """
    username = owner if isinstance(owner, str) else owner.get_username()
    if username in reserved_owners():
        raise BadRequest(f"{username!r} is a reserved name and cannot own repositories.")
    try:
        slug_validator(slug)
    except ValidationError as exc:
        raise BadRequest(f"Invalid repository name {slug!r}: {exc.messages[0]}") from exc
    validate_domain(domain)
    if visibility not in Visibility.values:
        raise BadRequest(f"visibility must be one of {', '.join(Visibility.values)}.")
    validate_branch_name(default_branch)
    now = dt.datetime.now(dt.UTC)
    identity = compute_identity_id(username)
    repo = Repo(
        repo_id=compute_repo_id(identity, slug, domain, now.isoformat()),
        owner=username,
        owner_user=None if isinstance(owner, str) else owner,
        owner_identity_id=identity,
        slug=slug,
        name=name or slug,
        description=description,
        visibility=visibility,
        domain=domain,
        default_branch=default_branch,
        created_at=now,
        updated_at=now,
    )
    try:
        with transaction.atomic():
            repo.save(force_insert=True)
    except IntegrityError as exc:
        raise Conflict(f"Repository {username}/{slug} already exists.") from exc
    return repo


def may_create_under(acting_user: User | None, owner: str) -> bool:
    """Return True when *acting_user* may create repositories under *owner* (their own name, not a reserved one)."""
    return (
        acting_user is not None
        and acting_user.is_authenticated
        and acting_user.get_username() == owner
        and owner not in reserved_owners()
    )


def repo_for_push(*, acting_user: User | None, owner: str, slug: str) -> Repo:
    """Return ``owner/slug`` for writing by *acting_user*, creating it when it is missing and *acting_user* is *owner*.

    Idempotent under concurrency: when a racing first push creates the
    repository first, this one finds it instead of failing.
    """
    try:
        return repo_for(acting_user, owner, slug, Role.WRITE)
    except RepoNotFound:
        if acting_user is None or not acting_user.is_authenticated:
            raise AuthenticationRequired("Pushing needs a token: send 'Authorization: Bearer <token>'.") from None
        if not may_create_under(acting_user, owner):
            if not Repo.objects.filter(owner=owner, slug=slug).exists():
                raise RepoNotFound(
                    f"Repository {owner}/{slug} not found; a push creates a repository only under your own name "
                    f"({acting_user.get_username()}/{slug})."
                ) from None
            raise
    try:
        return create_repo(owner=acting_user, slug=slug)
    except Conflict:  # created meanwhile by a concurrent first push
        return repo_for(acting_user, owner, slug, Role.WRITE)


# git's rule (git check-ref-format): these characters are revision syntax (~ ^ :), globs (* ? [), path
# trouble (\\) or ambiguous in URLs and commands (space); a name with them could not be a git ref either.
BRANCH_FORBIDDEN = " ~^:?*[\\"


DOMAIN_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def validate_domain(domain: object) -> str:
    """Return *domain* when it is a plausible Muse domain name (``code``, ``midi``, ...), else raise BadRequest."""
    if not isinstance(domain, str) or not DOMAIN_NAME.fullmatch(domain):
        raise BadRequest(
            f"domain must be a lowercase name of at most 32 letters, digits, '-' or '_', got {domain!r:.40}."
        )
    return domain


def domain_of(commits: Iterable[Mapping[str, Any]]) -> str | None:
    """Return the domain pushed commits declare (the CLI's ``structured_delta.domain``), or None."""
    for commit in commits:
        delta = (commit.get("metadata") or {}).get("structured_delta")
        domain = delta.get("domain") if isinstance(delta, dict) else None
        if isinstance(domain, str) and DOMAIN_NAME.fullmatch(domain):
            return domain
    return None


def adopt_domain(repo: Repo, commits: Iterable[Mapping[str, Any]]) -> None:
    """Give a repository that has no branch yet the domain its first pushed history declares."""
    domain = domain_of(commits)
    if domain and domain != repo.domain and not Branch.objects.filter(repo=repo).exists():
        Repo.objects.filter(pk=repo.pk).update(domain=domain)
        repo.domain = domain


def validate_branch_name(name: object) -> str:
    """Return *name* when it is a usable branch name, else raise BadRequest saying what is wrong.

    Slashes separate folders (``feature/x``); segments may not be empty, ``.``
    or ``..``; the name may not start with ``-`` and holds no control
    characters and none of ``BRANCH_FORBIDDEN`` (git's own rule).
    """
    if not isinstance(name, str) or not name:
        raise BadRequest("A branch name must be a non-empty string.")
    shown = f"{name!r:.80}"
    if len(name) > 255:
        raise BadRequest(f"Branch name {shown} is longer than 255 characters.")
    bad = sorted({ch for ch in name if ch in BRANCH_FORBIDDEN or ord(ch) < 32 or ch == "\x7f"})
    if bad:
        listed = " ".join(repr(ch) for ch in bad)
        raise BadRequest(
            f"Branch name {shown} holds {listed}: branch names follow git's rule and may not contain spaces, "
            "control characters or any of ~ ^ : ? * [ \\ (they mean something else in revisions, URLs and globs)."
        )
    if name.startswith("-") or any(part in ("", ".", "..") for part in name.split("/")):
        raise BadRequest(
            f"Branch name {shown} may not start with '-', start or end with '/', or hold an empty, '.' or '..' folder."
        )
    return name


def _check_no_path_clash(repo: Repo, name: str) -> None:
    """Refuse a new branch that would be a folder of an existing one, or hold one (``rel`` and ``rel/1``)."""
    parts = name.split("/")
    ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
    clash = (
        Branch.objects.filter(repo=repo)
        .filter(Q(name__in=ancestors) | Q(name__startswith=name + "/"))
        .values_list("name", flat=True)
        .first()
    )
    if clash is not None:
        raise BranchNameClash(
            f"Branch {name!r} cannot exist beside branch {clash!r}: one name would be a folder of the other "
            "(git's rule; clones store branches as files). Delete or rename one of them first.",
            branch=name,
            existing=clash,
        )


def move_branch(repo: Repo, name: str, new_head: str, *, force: bool = False) -> Branch:
    """Point branch *name* of *repo* at *new_head* under a row lock; call inside a transaction.

    Without *force* the move must be a fast-forward (the current head is an
    ancestor of *new_head* in stored history), else NonFastForward. A missing
    branch is created (BranchNameClash when it would be a folder of an existing
    branch, or hold one); a repository's first branch becomes its default branch.
    *new_head* must be a commit the repository sees.
    """
    validate_branch_name(name)
    if not CommitRef.objects.filter(repo=repo, commit_id=new_head).exists():
        raise RefNotFound(f"Commit {new_head} is not in {repo.full_name}.")
    branch = Branch.objects.select_for_update().filter(repo=repo, name=name).first()
    if branch is None:
        _check_no_path_clash(repo, name)
        first = not Branch.objects.filter(repo=repo).exists()
        try:
            with transaction.atomic():
                created = Branch.objects.create(
                    branch_id=compute_branch_id(repo.repo_id, name), repo=repo, name=name, head_commit_id=new_head
                )
            if first and repo.default_branch != name:
                # The first branch of a repository becomes its default (muse init --default-branch trunk).
                Repo.objects.filter(pk=repo.pk).update(default_branch=name)
                repo.default_branch = name
            return created
        except IntegrityError:
            # Another writer created the branch first: retry as an update under its lock.
            branch = Branch.objects.select_for_update().get(repo=repo, name=name)
    old_head = branch.head_commit_id
    if old_head == new_head:
        return branch
    if old_head and not force and not graph.is_ancestor(old_head, new_head):
        raise NonFastForward(
            f"Branch {name!r} is at {old_head}, which is not an ancestor of {new_head}. "
            "Fetch and merge first, or push with force.",
            branch=name,
            remote_head=old_head,
        )
    branch.head_commit_id = new_head
    branch.save(update_fields=["head_commit_id", "updated_at"])
    Repo.objects.filter(pk=repo.pk).update(updated_at=dt.datetime.now(dt.UTC))
    return branch


def set_collaborator(repo: Repo, *, username: str, role: str) -> Collaborator:
    """Give *username* *role* on *repo* (replacing any earlier role)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    if role not in Role.values:
        raise BadRequest(f"role must be one of {', '.join(Role.values)}.")
    collaborator, _ = Collaborator.objects.update_or_create(repo=repo, user=user, defaults={"role": role})
    return collaborator


def remove_collaborator(repo: Repo, *, username: str) -> None:
    """Take away every role *username* holds on *repo*."""
    Collaborator.objects.filter(repo=repo, user__username=username).delete()
