"""Plain read-side queries: repositories, branches and refs, commits, objects, collaborators, tokens, proposals,
releases, tags and domains, each raising a domain NotFound.

Each selector is a query or two whose number does not grow with the size of a
page, and keeps nothing between requests. Logs, directory listings and diffs,
which keep per-process caches of what never changes, are the read model of
``repos.readmodel`` (built on these); both faces read history and trees there.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Case, CharField, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Lower

from musehub_core.errors import BadRequest, NotFound, RefNotFound, RepoNotFound
from musehub_core.ids import is_hex, is_id
from repos.manifests import load_manifests
from repos.models import (
    ApiToken,
    Branch,
    Collaborator,
    Commit,
    CommitGraph,
    CommitRef,
    Domain,
    Object,
    Proposal,
    ProposalState,
    Release,
    Repo,
    Tag,
    Visibility,
)

# --- repositories ---------------------------------------------------------------------------------


def repo_by_id(repo_id: str) -> Repo:
    try:
        return Repo.objects.get(repo_id=repo_id)
    except Repo.DoesNotExist:
        raise RepoNotFound(f"No repository with id {repo_id}.") from None


def repos_named(owner: str, slug: str) -> QuerySet[Repo]:
    """Return the repository called ``owner/slug`` in any case (GitHub's rule), as a query of at most one row.

    Both sides go through the database's ``LOWER`` (the unique index is on
    ``LOWER(owner), LOWER(slug)``), so the lookup and the constraint agree.
    """
    return Repo.objects.alias(lower_owner=Lower("owner"), lower_slug=Lower("slug")).filter(
        lower_owner=Lower(Value(owner, output_field=CharField())),
        lower_slug=Lower(Value(slug, output_field=CharField())),
    )


def repo_by_name(owner: str, slug: str) -> Repo:
    """Return repository ``owner/slug`` (names match in any case; the stored spelling is kept), else RepoNotFound."""
    repo = repos_named(owner, slug).select_related("owner_user").first()
    if repo is None:
        raise RepoNotFound(f"Repository {owner}/{slug} not found.")
    return repo


def former_name_key(owner: str, slug: str) -> str:
    """Return how ``Repo.former_names`` records the name ``owner/slug``."""
    return f"{owner}/{slug}".lower()


def moved_repo(owner: str, slug: str) -> Repo | None:
    """Return the repository that was called ``owner/slug`` before a rename or transfer (the latest), or None.

    Only asked after a lookup by name failed, so its scan of ``former_names`` is off the common path.
    """
    key = former_name_key(owner, slug)
    for repo in Repo.objects.filter(former_names__contains=key).select_related("owner_user").order_by("-updated_at"):
        if key in repo.former_names.splitlines():
            return repo
    return None


def readable_repos(user: User | AnonymousUser | None, *, owner: str | None = None, q: str | None = None):
    """Return the repositories *user* may read, newest activity first (``updated_at``, moved by every push).

    Anyone reads public repositories; a signed-in user also reads their own
    and those they collaborate on; a superuser reads everything. *owner*
    keeps one owner's (any case); *q* keeps those whose slug, name or
    description contains it (any case). Callers that want the user's own
    repositories first order by :func:`owned_first` themselves.
    """
    rows = Repo.objects.select_related("owner_user")
    if user is None or not user.is_authenticated:
        rows = rows.filter(visibility=Visibility.PUBLIC)
    elif not user.is_superuser:
        rows = rows.filter(
            Q(visibility=Visibility.PUBLIC)
            | Q(owner=user.get_username())
            | Q(pk__in=Collaborator.objects.filter(user=user).values("repo_id"))
        )
    if owner:
        rows = rows.alias(lower_owner=Lower("owner")).filter(lower_owner=Lower(Value(owner, output_field=CharField())))
    if q:
        rows = rows.filter(Q(slug__icontains=q) | Q(name__icontains=q) | Q(description__icontains=q))
    return rows.order_by("-updated_at", "owner", "slug")


def owned_first(rows: QuerySet[Repo], user: User | AnonymousUser | None) -> QuerySet[Repo]:
    """Order *rows* with *user*'s own repositories and collaborations first, then newest activity first."""
    if user is None or not user.is_authenticated:
        return rows
    mine = Q(owner=user.get_username()) | Q(pk__in=Collaborator.objects.filter(user=user).values("repo_id"))
    return rows.annotate(
        is_mine=Case(When(mine, then=Value(0)), default=Value(1), output_field=IntegerField())
    ).order_by("is_mine", "-updated_at", "owner", "slug")


# --- branches and refs ----------------------------------------------------------------------------


def branches_of(repo: Repo) -> QuerySet[Branch]:
    """Return the branches of *repo* that have a head, by name."""
    return Branch.objects.filter(repo=repo, head_commit_id__isnull=False).order_by("name")


def branch_heads(repo: Repo) -> dict[str, str]:
    """Return {branch name: head commit id} for every branch of *repo* that has a head."""
    rows = Branch.objects.filter(repo=repo, head_commit_id__isnull=False).order_by("name")
    return dict(rows.values_list("name", "head_commit_id"))


def branch_by_name(repo: Repo, name: str) -> Branch:
    branch = branches_of(repo).filter(name=name).first()
    if branch is None:
        raise RefNotFound(f"No branch {name!r} in {repo.full_name}.")
    return branch


def resolve_ref(repo: Repo, ref: str) -> str:
    """Return the commit id *ref* names in *repo*: a branch name, or a commit id (prefixed or bare hex)."""
    head = Branch.objects.filter(repo=repo, name=ref).values_list("head_commit_id", flat=True).first()
    if head:
        return head
    candidate = "sha256:" + ref if is_hex(ref) else ref
    if is_id(candidate) and CommitRef.objects.filter(repo=repo, commit_id=candidate).exists():
        return candidate
    raise RefNotFound(f"{ref!r} is neither a branch nor a commit of {repo.full_name}.")


def split_ref_path(repo: Repo, spec: str) -> tuple[str, str, str]:
    """Split ``<ref>/<path>`` into (ref, commit id, path); the longest matching branch name wins.

    Branch names may hold slashes, so ``feature/x/src/a.py`` is branch
    ``feature/x`` and path ``src/a.py`` when that branch exists. Otherwise the
    first segment must be a branch or a commit id.
    """
    parts = [p for p in spec.strip("/").split("/") if p]
    if not parts:
        raise BadRequest("A ref is required.")
    heads = dict(branches_of(repo).filter(name__startswith=parts[0]).values_list("name", "head_commit_id"))
    for end in range(len(parts), 0, -1):
        name = "/".join(parts[:end])
        if name in heads:
            return name, heads[name], "/".join(parts[end:])
    return parts[0], resolve_ref(repo, parts[0]), "/".join(parts[1:])


def split_compare_spec(repo: Repo, spec: str) -> tuple[str, str]:
    """Return the commit ids of ``<base>...<head>`` (refs may hold slashes, and even dots)."""
    start = spec.find("...")
    failure: RefNotFound | None = None
    while start > 0:
        base, head = spec[:start], spec[start + 3 :]
        if head:
            try:
                return resolve_ref(repo, base), resolve_ref(repo, head)
            except RefNotFound as exc:
                failure = exc
        start = spec.find("...", start + 1)
    if failure is not None:
        raise failure
    raise BadRequest(f"Compare needs '<base>...<head>', got {spec!r:.120}.")


# --- commits, snapshots and objects ---------------------------------------------------------------


def commits_by_id(commit_ids: Iterable[str]) -> dict[str, Commit]:
    """Return {commit_id: Commit} for those of *commit_ids* that exist, in one query."""
    return Commit.objects.in_bulk(list(dict.fromkeys(commit_ids)))


def commit_in_repo(repo: Repo, commit_id: str) -> Commit:
    """Return commit *commit_id* (prefixed or bare hex) if *repo* sees it, else raise RefNotFound."""
    candidate = "sha256:" + commit_id if is_hex(commit_id) else commit_id
    commit = None
    if is_id(candidate):
        commit = Commit.objects.filter(commit_id=candidate, refs__repo=repo).first()
    if commit is None:
        raise RefNotFound(f"No commit {commit_id!r:.80} in {repo.full_name}.")
    return commit


def snapshot_ids_of(commit_ids: Iterable[str]) -> dict[str, str]:
    """Return {commit_id: snapshot_id} from the graph table, in one query."""
    ids = list(dict.fromkeys(commit_ids))
    return dict(CommitGraph.objects.filter(commit_id__in=ids).values_list("commit_id", "snapshot_id"))


def manifests_of_commits(commit_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Return {commit_id: manifest} for commits in the graph, in two queries."""
    snapshots = snapshot_ids_of(commit_ids)
    manifests = load_manifests(snapshots.values())
    return {cid: manifests.get(sid, {}) for cid, sid in snapshots.items()}


def object_sizes(object_ids: Iterable[str]) -> dict[str, int]:
    """Return {object_id: size in bytes} for the given objects, in one query (none for no objects)."""
    ids = list(dict.fromkeys(object_ids))
    if not ids:
        return {}
    return dict(Object.objects.filter(object_id__in=ids).values_list("object_id", "size_bytes"))


# --- users, collaborators and tokens --------------------------------------------------------------


def user_named(username: str) -> User | None:
    """Return the account called *username* (any case), or None."""
    return get_user_model().objects.filter(username__iexact=username).first()


def collaborators_of(repo: Repo) -> list[Collaborator]:
    """Return *repo*'s collaborators with their users, by username (one query)."""
    return list(Collaborator.objects.filter(repo=repo).select_related("user").order_by("user__username"))


def api_tokens_of(user: User) -> QuerySet[ApiToken]:
    """Return *user*'s API tokens, newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at")


# --- proposals ------------------------------------------------------------------------------------


def proposals_of(repo: Repo, state: str | None = None) -> QuerySet[Proposal]:
    """Return *repo*'s proposals, newest first, optionally only those in *state*."""
    rows = Proposal.objects.filter(repo=repo).order_by("-number")
    if state:
        if state not in ProposalState.values:
            raise BadRequest(f"state must be one of {', '.join(ProposalState.values)}.")
        rows = rows.filter(state=state)
    return rows


def proposal_by_number(repo: Repo, number: int) -> Proposal:
    proposal = Proposal.objects.filter(repo=repo, number=number).first()
    if proposal is None:
        raise NotFound(f"No proposal #{number} in {repo.full_name}.")
    return proposal


# --- releases, tags and published domains ---------------------------------------------------------


def releases_of(repo: Repo, *, channel: str | None = None, include_drafts: bool = False) -> QuerySet[Release]:
    """Return *repo*'s releases, newest first; drafts only with *include_drafts*, one channel with *channel*."""
    rows = Release.objects.filter(repo=repo).order_by("-created_at", "tag")
    if not include_drafts:
        rows = rows.filter(is_draft=False)
    if channel:
        rows = rows.filter(channel=channel)
    return rows


def release_by_tag(repo: Repo, tag: str, *, include_drafts: bool = False) -> Release:
    """Return *repo*'s release *tag* (a draft only with *include_drafts*), else raise NotFound."""
    release = releases_of(repo, include_drafts=include_drafts).filter(tag=tag).first()
    if release is None:
        raise NotFound(f"No release {tag!r:.120} in {repo.full_name}.")
    return release


def tags_of(repo: Repo, *, commit_id: str | None = None) -> QuerySet[Tag]:
    """Return *repo*'s tags by name (then age), optionally only those on *commit_id* (prefixed or bare hex)."""
    rows = Tag.objects.filter(repo=repo).order_by("name", "created_at", "commit_id")
    if commit_id:
        rows = rows.filter(commit_id="sha256:" + commit_id if is_hex(commit_id) else commit_id)
    return rows


def published_domains() -> QuerySet[Domain]:
    """Return every published domain, by ``@publisher/slug``."""
    return Domain.objects.select_related("publisher").order_by("author_slug", "slug")


def domain_by_name(author_slug: str, slug: str) -> Domain:
    """Return published domain ``@author_slug/slug`` (the ``@`` is optional), else raise NotFound."""
    author_slug = author_slug.removeprefix("@")
    domain = published_domains().filter(author_slug=author_slug, slug=slug).first()
    if domain is None:
        raise NotFound(f"No published domain @{author_slug}/{slug}.")
    return domain
