"""Who may do what to a repository: the one permission check every read and write path calls.

Public repositories are readable by anyone. A private repository is invisible
(404, never 403) to anyone without read access. Writing needs the write role,
administering the admin role; the owner and superusers have every role.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from musehub_core.errors import AuthenticationRequired, Conflict, PermissionDenied, RepoNotFound
from repos.models import Collaborator, Repo, Role
from repos.selectors import repo_by_name

RANKS = {None: 0, Role.READ: 1, Role.WRITE: 2, Role.ADMIN: 3}
# First path segments that are hub routes, so no account may own repositories under them.
RESERVED_OWNERS = frozenset({"admin", "api", "_storage", "static", "health", "metrics"})

User = AbstractBaseUser | AnonymousUser


def role_of(user: User | None, repo: Repo) -> str | None:
    """Return the role *user* holds on *repo* (None for no role)."""
    if user is None or not user.is_authenticated:
        return Role.READ if repo.is_public else None
    if user.is_superuser or user.get_username() == repo.owner:
        return Role.ADMIN
    granted = Collaborator.objects.filter(repo=repo, user=user).values_list("role", flat=True).first()
    if granted is None and repo.is_public:
        return Role.READ
    return granted


def require(user: User | None, repo: Repo, role: str) -> Repo:
    """Return *repo* when *user* holds at least *role* on it.

    Raises RepoNotFound when the user cannot even read it, AuthenticationRequired
    when an anonymous caller needs more than read, PermissionDenied otherwise.
    """
    held = role_of(user, repo)
    if RANKS[held] >= RANKS[role]:
        return repo
    if held is None:  # a private repository stays invisible
        raise RepoNotFound(f"Repository {repo.full_name} not found.")
    if user is None or not user.is_authenticated:
        raise AuthenticationRequired(
            f"Writing to {repo.full_name} needs a token: send 'Authorization: Bearer <token>'."
        )
    raise PermissionDenied(f"You have {held} access to {repo.full_name}; this needs {role}.")


def repo_for(user: User | None, owner: str, slug: str, role: str = Role.READ) -> Repo:
    """Return repository ``owner/slug`` if *user* holds *role* on it (see :func:`require`)."""
    return require(user, repo_by_name(owner, slug), role)


def repo_for_push(user: User | None, owner: str, slug: str) -> Repo:
    """Return ``owner/slug`` for writing, creating it when it is missing and *user* is *owner*."""
    from repos.services.repos import create_repo

    try:
        return repo_for(user, owner, slug, Role.WRITE)
    except RepoNotFound:
        if user is None or not user.is_authenticated:
            raise AuthenticationRequired("Pushing needs a token: send 'Authorization: Bearer <token>'.") from None
        if user.get_username() != owner or owner in RESERVED_OWNERS:
            raise
        if Repo.objects.filter(owner=owner, slug=slug).exists():
            raise
        try:
            return create_repo(owner=user, slug=slug)
        except Conflict:  # created by a concurrent first push
            return repo_for(user, owner, slug, Role.WRITE)
