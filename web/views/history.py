"""History pages: the commit log (paginated, filtered by path), one commit with its changes, branches, compare."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from musehub_core.errors import BadRequest
from repos import readmodel, selectors
from web.pages import LazyPage, page, page_number, paginate, raw_prefix, repo_context, repo_page

LOG_PAGE = 50
CHANGES_SHOWN = 100  # changed paths listed on one page
DIFFS_SHOWN = 40  # text diffs read and shown on one page
AHEAD_SHOWN = 250  # commits listed on a compare page


@page
def commits(request: HttpRequest, owner: str, slug: str, spec: str = "") -> HttpResponse:
    """``commits/{ref}``: the log of a ref, newest first, 50 a page; ``?path=`` keeps commits touching a path."""
    ctx = repo_page(request, owner, slug)
    spec = spec or ctx.repo.default_branch
    ref, commit_id, rest = selectors.split_ref_path(ctx.repo, spec)
    path = (request.GET.get("path") or rest).strip("/")
    log = readmodel.CommitLog(commit_id, path=path)
    if path:  # compared only as far as this page needs: a path changed often shows at once
        number = page_number(request)
        rows, more = log.page(number, LOG_PAGE)
        current = LazyPage(rows, number, more, total=log.total)
    else:  # counting is one walk of the graph: the page says how many pages there are
        current = paginate(request, log, LOG_PAGE)
    context = repo_context(ctx, ref=ref, commit_id=commit_id, path=path, page=current, tab="commits")
    return render(request, "web/commits.html", context)


@page
def commit(request: HttpRequest, owner: str, slug: str, commit_id: str) -> HttpResponse:
    """``commit/{id}``: message, author, parents, and its changes against the first parent with diffs."""
    ctx = repo_page(request, owner, slug)
    row = selectors.commit_in_repo(ctx.repo, commit_id)
    diff = readmodel.commit_diff(row)
    shown, total = readmodel.file_changes(diff.changes, diff.old, diff.new, limit=CHANGES_SHOWN, diff_limit=DIFFS_SHOWN)
    context = repo_context(
        ctx,
        commit=row,
        parents=row.parent_ids,
        changes=shown,
        total_changes=total,
        counts=diff.changes,
        ref=row.commit_id,
        raw_prefix=raw_prefix(ctx.repo, row.commit_id.removeprefix("sha256:")),
        tab="commits",
    )
    return render(request, "web/commit.html", context)


@page
def branches(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """``branches``: every branch with its head commit; the default branch first."""
    ctx = repo_page(request, owner, slug)
    rows = list(selectors.branches_of(ctx.repo))
    rows.sort(key=lambda b: (b.name != ctx.repo.default_branch, b.name))
    current = paginate(request, rows, 100)
    heads = selectors.commits_by_id(b.head_commit_id for b in current.object_list)
    items = [(b, heads.get(b.head_commit_id)) for b in current.object_list]
    return render(request, "web/branches.html", repo_context(ctx, page=current, items=items, tab="branches"))


@page
def compare(request: HttpRequest, owner: str, slug: str, spec: str = "") -> HttpResponse:
    """``compare/{base}...{head}``: the commits head has and base lacks, and the changes since they forked."""
    ctx = repo_page(request, owner, slug)
    repo = ctx.repo
    if not spec:
        base, head = request.GET.get("base", ""), request.GET.get("head", "")
        if base and head:
            return redirect("web-compare", owner=repo.owner, slug=repo.slug, spec=f"{base}...{head}")
        return render(
            request,
            "web/compare.html",
            repo_context(ctx, names=list(selectors.branch_heads(repo)), base=repo.default_branch, tab="branches"),
        )
    base_ref, _, head_ref = spec.partition("...")
    if not head_ref:
        raise BadRequest(f"Compare needs '<base>...<head>', got {spec!r:.120}.")
    base_id, head_id = selectors.split_compare_spec(repo, spec)
    comparison = readmodel.branch_diff(base_id, head_id, count_behind=False)  # whether base moved, not how far
    ahead = comparison.ahead[:AHEAD_SHOWN]
    rows = selectors.commits_by_id(ahead)
    shown, total = readmodel.file_changes(
        comparison.changes, comparison.old, comparison.new, limit=CHANGES_SHOWN, diff_limit=DIFFS_SHOWN
    )
    names = list(selectors.branch_heads(repo))
    context = repo_context(
        ctx,
        spec=spec,
        base=base_ref,
        head=head_ref,
        names=names,
        comparison=comparison,
        ahead=[rows[c] for c in ahead if c in rows],
        ahead_total=len(comparison.ahead),
        changes=shown,
        total_changes=total,
        raw_prefix=raw_prefix(repo, head_id.removeprefix("sha256:")),
        can_propose=request.user.is_authenticated and base_ref in names and head_ref in names and base_ref != head_ref,
        tab="branches",
    )
    return render(request, "web/compare.html", context)
