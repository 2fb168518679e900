"""Merge proposals in the browser: list, open, read (commits, changes, conflicts), edit, merge, close, reopen.

Every write goes through ``repos.services.proposals``, which checks the role
it needs (opening: signed in and able to read; editing, closing, reopening:
the author or a writer; merging: a writer). A refused or failed write comes
back to the proposal's page with the service's sentence.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from musehub_core.errors import BadRequest, Conflict, InvalidProposal, MuseHubError, PermissionDenied
from repos import readmodel, selectors
from repos.models import ProposalState
from repos.services import proposals as service
from web.forms import MergeForm, ProposalEditForm, ProposalForm
from web.pages import page, paginate, raw_prefix, repo_context, repo_page
from web.render import markdown_html
from web.views.history import AHEAD_SHOWN, CHANGES_SHOWN, DIFFS_SHOWN


@page
def proposal_list(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """``proposals?state=``: open proposals by default, newest first."""
    ctx = repo_page(request, owner, slug)
    state = request.GET.get("state") or ProposalState.OPEN
    if state not in ProposalState.values:
        raise BadRequest(f"state must be one of {', '.join(ProposalState.values)}.")
    current = paginate(request, selectors.proposals_of(ctx.repo, state), 30)
    counts = {s: selectors.proposals_of(ctx.repo, s).count() for s in ProposalState.values}
    context = repo_context(ctx, page=current, state=state, counts=counts, tab="proposals")
    return render(request, "web/proposals.html", context)


@page
def proposal_new(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """``proposals/new``: the form opening a proposal (signed-in readers may open one)."""
    ctx = repo_page(request, owner, slug)
    repo = ctx.repo
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    names = list(selectors.branch_heads(repo))
    initial = {"to_branch": request.GET.get("to") or repo.default_branch, "from_branch": request.GET.get("from", "")}
    form = ProposalForm(request.POST or None, branches=names, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            proposal = service.create_proposal(repo.repo_id, acting_user=request.user, **form.cleaned_data)
        except (BadRequest, InvalidProposal) as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("web-proposal", owner=repo.owner, slug=repo.slug, number=proposal.number)
    return render(request, "web/proposal_form.html", repo_context(ctx, form=form, tab="proposals", new=True))


@page
def proposal_detail(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    """``proposals/{n}``: description, the commits it brings, its changes, conflicts, and the actions allowed."""
    ctx = repo_page(request, owner, slug)
    repo = ctx.repo
    proposal = selectors.proposal_by_number(repo, number)
    heads = selectors.branch_heads(repo)
    if proposal.state == ProposalState.OPEN:
        source, target = heads.get(proposal.from_branch), heads.get(proposal.to_branch)
    else:  # what it held when it was merged or closed
        source, target = proposal.head_commit_id, proposal.base_commit_id
    ahead_ids: list[str] = []
    changes: list[readmodel.FileChange] = []
    total = 0
    conflicts: list[dict[str, str]] = []
    if source:
        diff = readmodel.branch_diff(target, source, conflicts=proposal.state == ProposalState.OPEN, count_behind=False)
        ahead_ids, conflicts = diff.ahead, diff.conflicts
        changes, total = readmodel.file_changes(
            diff.changes, diff.old, diff.new, limit=CHANGES_SHOWN, diff_limit=DIFFS_SHOWN
        )
    rows = selectors.commits_by_id(ahead_ids[:AHEAD_SHOWN])
    user = request.user
    may_change = user.is_authenticated and (ctx.can_write or user.get_username() == proposal.author)
    context = repo_context(
        ctx,
        proposal=proposal,
        commits=[rows[c] for c in ahead_ids[:AHEAD_SHOWN] if c in rows],
        commits_total=len(ahead_ids),
        changes=changes,
        total_changes=total,
        conflicts=conflicts,
        source_missing=proposal.state == ProposalState.OPEN and source is None,
        merge_form=MergeForm() if ctx.can_write and proposal.state == ProposalState.OPEN and source else None,
        may_change=may_change,
        body_html=markdown_html(proposal.body) if proposal.body else "",
        raw_prefix=raw_prefix(repo, source.removeprefix("sha256:")) if source else "",
        tab="proposals",
    )
    return render(request, "web/proposal.html", context)


@page
def proposal_edit(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    """``proposals/{n}/edit``: change the title and description (the author or a writer)."""
    ctx = repo_page(request, owner, slug)
    proposal = selectors.proposal_by_number(ctx.repo, number)
    form = ProposalEditForm(request.POST or None, initial={"title": proposal.title, "body": proposal.body})
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if form.is_valid():
            try:
                service.update_proposal(
                    ctx.repo.repo_id, proposal.proposal_id, acting_user=request.user, **form.cleaned_data
                )
            except InvalidProposal as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("web-proposal", owner=ctx.repo.owner, slug=ctx.repo.slug, number=number)
    context = repo_context(ctx, form=form, proposal=proposal, tab="proposals", new=False)
    return render(request, "web/proposal_form.html", context)


def _act(request: HttpRequest, owner: str, slug: str, number: int, action, done: str) -> HttpResponse:
    ctx = repo_page(request, owner, slug)
    proposal = selectors.proposal_by_number(ctx.repo, number)
    try:
        action(ctx.repo.repo_id, proposal.proposal_id)
    except PermissionDenied:
        raise
    except (Conflict, InvalidProposal, BadRequest) as exc:
        messages.error(request, exc.message)
    except MuseHubError as exc:
        if exc.status < 500 and exc.status not in (401, 404):
            messages.error(request, exc.message)
        else:
            raise
    else:
        messages.success(request, done)
    return redirect("web-proposal", owner=ctx.repo.owner, slug=ctx.repo.slug, number=number)


@require_POST
@page
def proposal_merge(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    form = MergeForm(request.POST)
    if not form.is_valid():
        raise BadRequest("Choose a merge strategy: " + ", ".join(service.MergeStrategy.values) + ".")
    strategy = form.cleaned_data["strategy"]

    def merge(repo_id, proposal_id):
        return service.merge_proposal(repo_id, proposal_id, strategy=strategy, acting_user=request.user)

    return _act(request, owner, slug, number, merge, "Merged.")


@require_POST
@page
def proposal_close(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    def close(repo_id, proposal_id):
        return service.close_proposal(repo_id, proposal_id, acting_user=request.user)

    return _act(request, owner, slug, number, close, "Closed.")


@require_POST
@page
def proposal_reopen(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    def reopen(repo_id, proposal_id):
        return service.reopen_proposal(repo_id, proposal_id, acting_user=request.user)

    return _act(request, owner, slug, number, reopen, "Reopened.")
