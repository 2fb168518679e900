"""What every page shares: domain errors as HTML pages, pagination, and the repository a page is about.

A view decorated with :func:`page` may raise any domain error: a private
repository the visitor may not read is the same 404 page as one that does not
exist; an anonymous visitor who needs to sign in is sent to the sign-in page;
a renamed or transferred repository's old URL redirects to the same page under
its new name (for those who may read it);
any other error is a page with the error's own status and sentence (503 keeps
its ``Retry-After``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from musehub_core.errors import AuthenticationRequired, MuseHubError, RepoMoved
from repos import selectors
from repos.access import RANKS, repo_for, role_of
from repos.models import ProposalState, Repo, Role


def page(view):
    """Render domain errors raised by *view* as HTML pages (see the module docstring)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except AuthenticationRequired as exc:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            return error_page(request, exc)
        except RepoMoved as exc:
            moved = _moved_url(request, kwargs, exc.data.get("moved_to"))
            return redirect(moved) if moved else error_page(request, exc)
        except MuseHubError as exc:
            return error_page(request, exc)

    return wrapper


def _moved_url(request: HttpRequest, kwargs: dict, moved_to: str | None) -> str | None:
    """Return the same page under a renamed repository's new name (browsers follow redirects; wire clients do not)."""
    owner, slug = kwargs.get("owner"), kwargs.get("slug")
    old = f"/{owner}/{slug}"
    if request.method not in ("GET", "HEAD") or not moved_to or not owner or not request.path.startswith(old):
        return None
    query = request.META.get("QUERY_STRING", "")
    return f"/{moved_to}{request.path[len(old) :]}" + (f"?{query}" if query else "")


def error_page(request: HttpRequest, exc: MuseHubError) -> HttpResponse:
    response = render(request, "web/error.html", {"error": exc, "status": exc.status}, status=exc.status)
    for name, value in exc.headers().items():
        response[name] = value
    return response


def paginate(request: HttpRequest, items: Any, per_page: int) -> Page:
    """Return the page ``?page=`` of *items* (the last page when the number is past the end)."""
    paginator = Paginator(items, per_page, allow_empty_first_page=True)
    try:
        return paginator.page(request.GET.get("page") or 1)
    except PageNotAnInteger:
        return paginator.page(1)
    except EmptyPage:
        return paginator.page(paginator.num_pages)


@dataclass
class LazyPage:
    """A page of a list whose length is not known yet (a log filtered by path): the parts of ``Page`` templates use."""

    object_list: list
    number: int
    more: bool
    total: int | None = None  # known once the whole list has been read
    paginator = None

    def __iter__(self):
        return iter(self.object_list)

    def has_next(self) -> bool:
        return self.more

    def has_previous(self) -> bool:
        return self.number > 1

    def has_other_pages(self) -> bool:
        return self.more or self.number > 1

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


def page_number(request: HttpRequest) -> int:
    """Return ``?page=`` as a number from 1 (1 when it is missing or not a number)."""
    try:
        return max(1, int(request.GET.get("page") or 1))
    except ValueError:
        return 1


@dataclass
class RepoContext:
    """The repository a page shows and what the visitor may do to it."""

    repo: Repo
    role: str | None

    @property
    def can_write(self) -> bool:
        return RANKS[self.role] >= RANKS[Role.WRITE]

    @property
    def can_admin(self) -> bool:
        return RANKS[self.role] >= RANKS[Role.ADMIN]


def repo_page(request: HttpRequest, owner: str, slug: str, role: str = Role.READ) -> RepoContext:
    """Return the repository ``owner/slug`` if the visitor holds *role* on it (else the domain's error)."""
    repo = repo_for(request.user, owner, slug, role)
    return RepoContext(repo=repo, role=role_of(request.user, repo))


def raw_url(repo: Repo, ref: str, path: str) -> str:
    """Return the REST ``raw/`` URL of *path* at *ref* (it serves the bytes with sandbox headers)."""
    return reverse("api-raw", kwargs={"owner": repo.owner, "slug": repo.slug, "spec": f"{ref}/{path}"})


def raw_prefix(repo: Repo, ref: str) -> str:
    """Return the raw URL of ``ref/`` (append a quoted path): one reversal for a page of links."""
    return raw_url(repo, ref, "x")[:-1]


def repo_context(ctx: RepoContext, **extra) -> dict:
    """Return what every repository page's template needs, plus *extra*."""
    repo = ctx.repo
    open_count = selectors.proposals_of(repo, ProposalState.OPEN).count()
    # Lists link every row to a commit: reverse the URL once, not per row.
    commit_prefix = reverse("web-commit", kwargs={"owner": repo.owner, "slug": repo.slug, "commit_id": "x"})[:-1]
    return {"repo": repo, "ctx": ctx, "open_proposals": open_count, "commit_prefix": commit_prefix, **extra}
