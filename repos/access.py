"""Who may do what to a repository: the one permission check every read and write path calls.

Public repositories are readable by anyone. A private repository is invisible
(404, never 403) to anyone without read access. Writing needs the write role,
administering the admin role; the owner and superusers have every role.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.urls import URLResolver, get_resolver

from musehub_core.errors import AuthenticationRequired, PermissionDenied, RepoMoved, RepoNotFound, ReservedOwner
from repos.models import Collaborator, Repo, Role
from repos.selectors import moved_repo, repo_by_name

RANKS: dict[str | None, int] = {None: 0, Role.READ: 1, Role.WRITE: 2, Role.ADMIN: 3}

# An account is Django's User (AUTH_USER_MODEL is not swapped); a caller is one, or anonymous.
User = Account | AnonymousUser


def _first_segments(patterns, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^")
        head = route.split("/", 1)[0]
        if head and not head.startswith(("<", "(", "\\")) and head.isprintable() and "$" not in head:
            found.add(head)
        elif isinstance(pattern, URLResolver) and not head:
            found |= _first_segments(pattern.url_patterns, route)
    return found


@functools.cache
def reserved_owners() -> frozenset[str]:
    """Return the first path segments of the hub's own routes (and static files): no account may own repositories there.

    Read from the URL table, so a new top-level route reserves its name by existing.
    """
    static = settings.STATIC_URL.strip("/").split("/", 1)[0]
    return frozenset(_first_segments(get_resolver().url_patterns) | ({static} if static else set()))


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


def is_reserved_owner(owner: str) -> bool:
    """Return True when *owner* is (in any case) a name of the hub's own routes, which owns no repository."""
    return owner.lower() in {name.lower() for name in reserved_owners()}


def reserved_owner_error(owner: str) -> ReservedOwner:
    return ReservedOwner(
        f"{owner!r} is a name the hub uses for its own pages ({', '.join(sorted(reserved_owners()))}): "
        f"no repository can live under it. Use a repository URL under your own username instead."
    )


def can_read(user: User | None, repo: Repo) -> bool:
    return RANKS[role_of(user, repo)] >= RANKS[Role.READ]


def repo_for(user: User | None, owner: str, slug: str, role: str = Role.READ) -> Repo:
    """Return repository ``owner/slug`` (any case) if *user* holds *role* on it (see :func:`require`).

    Raises ReservedOwner for an owner name the hub's routes use, and RepoMoved
    (a 404 naming the new place; wire clients refuse redirects) when the name
    is one the repository had before a rename or transfer and *user* may read it.
    """
    if is_reserved_owner(owner):
        raise reserved_owner_error(owner)
    try:
        repo = repo_by_name(owner, slug)
    except RepoNotFound:
        moved = moved_repo(owner, slug)
        if moved is not None and can_read(user, moved):
            raise RepoMoved(
                f"Repository {owner}/{slug} has moved: it is {moved.full_name} now. "
                f"Use the URL /{moved.full_name} (update your remote, e.g. muse remote set-url).",
                moved_to=moved.full_name,
            ) from None
        raise
    try:
        return require(user, repo, role)
    except RepoNotFound:
        # The lookup a missing name makes too: a private repository must not answer measurably sooner
        # than a missing one (the queries, not only the 404, would tell them apart).
        moved_repo(owner, slug)
        raise
