"""Create, change, rename, transfer and delete repositories, and move their branches.

Other faces call these by name: the REST API, the web settings page
(``update_repo``, ``rename_repo``, ``delete_repo``) and the admin
(``check_default_branch``, so a default branch is checked the same way everywhere).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
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
    PermissionDenied,
    RefNotFound,
    RepoMoved,
    RepoNotFound,
    UnknownBranch,
)
from musehub_core.ids import compute_branch_id, compute_identity_id, compute_repo_id
from repos import graph
from repos.access import Account, User, is_reserved_owner, repo_for, require
from repos.models import Branch, Collaborator, CommitRef, Repo, Role, Visibility, slug_validator
from repos.selectors import former_name_key, repos_named


def create_repo(
    *,
    owner: Account | str,
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
    if is_reserved_owner(username):
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
        raise Conflict(_taken_message(username, slug)) from exc
    return repo


def _taken_message(owner: str, slug: str) -> str:
    existing = repos_named(owner, slug).values_list("owner", "slug").first()
    if existing is not None and existing != (owner, slug):
        return (
            f"Repository {owner}/{slug} cannot be created: {existing[0]}/{existing[1]} exists, and names differ "
            "in more than case only (alice/MySongs and alice/mysongs are one repository)."
        )
    return f"Repository {owner}/{slug} already exists."


def may_create_under(acting_user: User | None, owner: str) -> bool:
    """Return True when *acting_user* may create repositories under *owner*: their own name in any case, not reserved.

    The repository is then created under the user's own spelling (a push to ``ALICE/x`` by alice makes ``alice/x``).
    Where two accounts differ only in case (Django allows it), neither may create under the shared name by
    case: only the exact spelling counts, so one cannot plant repositories that the other's URLs would show.
    """
    if acting_user is None or not acting_user.is_authenticated or is_reserved_owner(owner):
        return False
    name = acting_user.get_username()
    if name == owner:
        return True
    if name.lower() != owner.lower():
        return False
    User = get_user_model()
    field = User.USERNAME_FIELD
    return not User.objects.filter(**{f"{field}__iexact": owner}).exclude(pk=acting_user.pk).exists()


def creatable_or_repo(*, acting_user: User | None, owner: str, slug: str) -> Repo | None:
    """Return ``owner/slug`` if *acting_user* may read it, or None when it does not exist and a push by them would create it.

    Otherwise raise what a push would answer: ReservedOwner for a hub route
    name, RepoMoved for a former name, and RepoNotFound saying that a push
    creates repositories only under your own name.
    """
    try:
        return repo_for(acting_user, owner, slug)
    except RepoMoved:
        raise
    except RepoNotFound:
        if may_create_under(acting_user, owner) and not repos_named(owner, slug).exists():
            return None
        if acting_user is not None and acting_user.is_authenticated and not may_create_under(acting_user, owner):
            raise RepoNotFound(_not_your_namespace(acting_user, owner, slug)) from None
        raise


def _not_your_namespace(acting_user: User, owner: str, slug: str) -> str:
    return (
        f"Repository {owner}/{slug} not found, and you cannot create it: a push creates a repository only under "
        f"your own name ({acting_user.get_username()}/{slug})."
    )


def repo_for_push(*, acting_user: User | None, owner: str, slug: str) -> Repo:
    """Return ``owner/slug`` for writing by *acting_user*, creating it when it is missing and *acting_user* is *owner*.

    Idempotent under concurrency: when a racing first push creates the
    repository first, this one finds it instead of failing.
    """
    try:
        return repo_for(acting_user, owner, slug, Role.WRITE)
    except RepoMoved:
        raise  # never create a new repository at a name its owner just renamed away from
    except RepoNotFound:
        if acting_user is None or not acting_user.is_authenticated:
            raise AuthenticationRequired("Pushing needs a token: send 'Authorization: Bearer <token>'.") from None
        if not may_create_under(acting_user, owner):
            raise RepoNotFound(_not_your_namespace(acting_user, owner, slug)) from None
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
            now = dt.datetime.now(dt.UTC)
            if first and repo.default_branch != name:
                # The first branch of a repository becomes its default (muse init --default-branch trunk).
                Repo.objects.filter(pk=repo.pk).update(default_branch=name, updated_at=now)
                repo.default_branch = name
            else:
                Repo.objects.filter(pk=repo.pk).update(updated_at=now)  # new activity: lists show it first
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


# --- changing, renaming and deleting repositories -------------------------------------------------


class _Unset:
    """The value of an argument that was not passed (None can be meaningful)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def check_default_branch(repo: Repo, name: object) -> str:
    """Return *name* when it may be *repo*'s default branch, else raise.

    The name must be a valid branch name (BadRequest) and, once the repository
    has branches, one of them (UnknownBranch, 422, listing them): a default
    branch that does not exist makes every clone fail. A repository with no
    branch yet accepts any valid name (its first push sets the default anyway).
    """
    name = validate_branch_name(name)
    existing = Branch.objects.filter(repo=repo, head_commit_id__isnull=False)
    if existing.filter(name=name).exists() or not existing.exists():
        return name
    names = list(existing.order_by("name").values_list("name", flat=True)[:21])
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise UnknownBranch(
        f"{repo.full_name} has no branch {name!r:.80}, so it cannot be the default branch (clones would fail). "
        f"Push it first, or choose one of: {shown}.",
        branch=name,
    )


def update_repo(
    repo: Repo,
    *,
    acting_user: User | None,
    description: Any = UNSET,
    visibility: Any = UNSET,
    default_branch: Any = UNSET,
) -> Repo:
    """Change the description, visibility and/or default branch of *repo* (admin role) and return it.

    Only the arguments passed change. Raises BadRequest for a bad value,
    UnknownBranch for a default branch the repository does not have (see
    :func:`check_default_branch`), and what :func:`repos.access.require` raises.
    """
    require(acting_user, repo, Role.ADMIN)
    changed: dict[str, Any] = {}
    if description is not UNSET:
        if not isinstance(description, str) or len(description) > 10_000:
            raise BadRequest("description must be text of at most 10,000 characters.")
        changed["description"] = description
    if visibility is not UNSET:
        if visibility not in Visibility.values:
            raise BadRequest(f"visibility must be one of {', '.join(Visibility.values)}.")
        changed["visibility"] = visibility
    with transaction.atomic():
        locked = Repo.objects.select_for_update().get(pk=repo.pk)
        if default_branch is not UNSET:
            changed["default_branch"] = check_default_branch(locked, default_branch)
        if not changed:
            return locked
        for field_name, value in changed.items():
            setattr(locked, field_name, value)
        locked.updated_at = dt.datetime.now(dt.UTC)
        locked.save(update_fields=[*changed, "updated_at"])
    return locked


def delete_repo(repo: Repo, *, acting_user: User | None) -> None:
    """Delete *repo* and every row that belongs to it only (admin role).

    Its branches, proposals, releases, tags, collaborators, upload slots and
    its refs to commits, snapshots and objects go in one transaction. Content
    rows (commits, snapshots, objects) are shared by content id and its packs
    may hold blobs other repositories use, so they stay until ``manage.py gc``
    removes what no repository refers to any more (after its grace period).
    """
    require(acting_user, repo, Role.ADMIN)
    with transaction.atomic():
        Repo.objects.filter(pk=repo.pk).delete()


def rename_repo(
    repo: Repo,
    *,
    acting_user: User | None,
    new_slug: str | None = None,
    new_owner: Account | str | None = None,
) -> Repo:
    """Rename *repo* to *new_slug* and/or transfer it to *new_owner* (a user or a username); return it.

    Renaming needs the admin role; a transfer to another account needs the
    hub administrator (a superuser; there is no acceptance step yet, so an owner
    could otherwise put repositories in any account's name). The former owner stays on as an admin
    collaborator, so a transfer never locks them out. The old name is
    remembered: its URLs answer ``404 repo_moved`` naming the new one until a
    repository is created under that name again. Raises Conflict when the new
    name is taken (in any case), BadRequest for an invalid or reserved name,
    NotFound for an unknown user.
    """
    require(acting_user, repo, Role.ADMIN)
    slug = repo.slug if new_slug is None else new_slug
    try:
        slug_validator(slug)
    except ValidationError as exc:
        raise BadRequest(f"Invalid repository name {slug!r:.120}: {exc.messages[0]}") from exc
    owner_user = repo.owner_user
    owner = repo.owner
    if new_owner is not None:
        owner_user = _user_named(new_owner) if isinstance(new_owner, str) else new_owner
        owner = owner_user.get_username()
        if owner != repo.owner and (acting_user is None or not acting_user.is_superuser):
            # There is no acceptance step: an owner could otherwise put repositories in any account's name.
            raise PermissionDenied(
                f"Transferring {repo.full_name} to another account needs a hub administrator (a superuser): "
                "the receiving account has no way yet to accept it."
            )
        if is_reserved_owner(owner):
            raise BadRequest(f"{owner!r} is a reserved name and cannot own repositories.")
    if (owner, slug) == (repo.owner, repo.slug):
        return repo
    old_key = former_name_key(repo.owner, repo.slug)
    new_key = former_name_key(owner, slug)
    previous_owner = repo.owner_user
    try:
        with transaction.atomic():
            locked = Repo.objects.select_for_update().get(pk=repo.pk)
            former = [n for n in locked.former_names.splitlines() if n and n != new_key]
            if old_key != new_key and old_key not in former:
                former.append(old_key)
            if locked.name == locked.slug:
                locked.name = slug  # a display name that was the slug follows it
            locked.owner, locked.slug, locked.owner_user = owner, slug, owner_user
            locked.owner_identity_id = compute_identity_id(owner)
            locked.former_names = "\n".join(former)
            locked.updated_at = dt.datetime.now(dt.UTC)
            locked.save(
                update_fields=["owner", "slug", "name", "owner_user", "owner_identity_id", "former_names", "updated_at"]
            )
            if owner_user is not None:
                Collaborator.objects.filter(repo=locked, user=owner_user).delete()  # the owner holds every role
            if previous_owner is not None and owner_user != previous_owner:
                Collaborator.objects.update_or_create(repo=locked, user=previous_owner, defaults={"role": Role.ADMIN})
    except IntegrityError as exc:
        raise Conflict(_taken_message(owner, slug)) from exc
    return locked


def _user_named(username: str) -> Account:
    users = get_user_model().objects
    user = users.filter(username=username).first() or users.filter(username__iexact=username).first()
    if user is None:
        raise NotFound(f"No user named {username!r:.150}.")
    return user
