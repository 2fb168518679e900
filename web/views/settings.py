"""A repository's settings page (admin role): description, visibility, default branch, collaborators, deletion.

Writes go through ``repos.services.repos`` (``update_repo``, ``set_collaborator``,
``remove_collaborator``, ``delete_repo``); the page itself is 404 to anyone who
may not read the repository and 403 to readers and writers.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from musehub_core.errors import BadRequest, MuseHubError
from repos import selectors
from repos.models import Role
from repos.services import repos as repo_service
from web.forms import CollaboratorForm, DeleteRepoForm, RepoSettingsForm
from web.pages import page, repo_context, repo_page


@page
def repo_settings(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """``settings``: GET shows the forms; POST with ``action`` = update, collaborator, remove or delete."""
    ctx = repo_page(request, owner, slug, Role.ADMIN)
    repo = ctx.repo
    names = list(selectors.branch_heads(repo))
    settings_form = RepoSettingsForm(
        initial={"description": repo.description, "visibility": repo.visibility, "default_branch": repo.default_branch},
        branches=names,
    )
    collaborator_form = CollaboratorForm()
    delete_form = DeleteRepoForm()
    if request.method == "POST":
        action = request.POST.get("action")
        back = redirect("web-settings", owner=repo.owner, slug=repo.slug)
        try:
            if action == "update":
                settings_form = RepoSettingsForm(request.POST, branches=names)
                if settings_form.is_valid():
                    data = settings_form.cleaned_data
                    changes = {"description": data["description"], "visibility": data["visibility"]}
                    if names:
                        changes["default_branch"] = data["default_branch"]
                    repo_service.update_repo(repo, acting_user=request.user, **changes)
                    messages.success(request, "Settings saved.")
                    return back
            elif action == "collaborator":
                collaborator_form = CollaboratorForm(request.POST)
                if collaborator_form.is_valid():
                    data = collaborator_form.cleaned_data
                    repo_service.set_collaborator(repo, username=data["username"], role=data["role"])
                    messages.success(request, f"{data['username']} now has {data['role']} access.")
                    return back
            elif action == "remove":
                username = request.POST.get("username", "")
                repo_service.remove_collaborator(repo, username=username)
                messages.success(request, f"{username} no longer collaborates on {repo.full_name}.")
                return back
            elif action == "delete":
                delete_form = DeleteRepoForm(request.POST)
                if delete_form.is_valid():
                    if delete_form.cleaned_data["confirm"].strip() != repo.full_name:
                        delete_form.add_error("confirm", f"Type {repo.full_name} exactly to delete it.")
                    else:
                        repo_service.delete_repo(repo, acting_user=request.user)
                        messages.success(request, f"{repo.full_name} was deleted.")
                        return redirect("web-profile", owner=repo.owner)
            else:
                raise BadRequest("Unknown settings action.")
        except MuseHubError as exc:
            if exc.status >= 500 or exc.status in (401, 403, 404) and action != "collaborator":
                raise
            messages.error(request, exc.message)
    context = repo_context(
        ctx,
        settings_form=settings_form,
        collaborator_form=collaborator_form,
        delete_form=delete_form,
        collaborators=selectors.collaborators_of(repo),
        tab="settings",
    )
    status = 400 if request.method == "POST" else 200
    return render(request, "web/settings.html", context, status=status)
