"""The hub's front page (public repositories, searchable) and a user's page (their repositories)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from musehub_core.errors import NotFound
from repos.selectors import owned_first, readable_repos, user_named
from web.pages import page, paginate

PER_PAGE = 30


@page
def explore(request: HttpRequest) -> HttpResponse:
    """``/``: repositories the visitor may read, newest activity first; signed in, their own first."""
    q = (request.GET.get("q") or "").strip()[:200]
    rows = owned_first(readable_repos(request.user, q=q or None), request.user)
    return render(request, "web/explore.html", {"page": paginate(request, rows, PER_PAGE), "q": q})


@page
def profile(request: HttpRequest, owner: str) -> HttpResponse:
    """``/{owner}``: one account's repositories (private ones only for those who may read them)."""
    user = user_named(owner)
    rows = readable_repos(request.user, owner=owner)
    current = paginate(request, rows, PER_PAGE)
    if user is None and not current.object_list:
        raise NotFound(f"No user named {owner!r}.")
    return render(
        request, "web/profile.html", {"owner": user.get_username() if user else owner, "profile": user, "page": current}
    )
