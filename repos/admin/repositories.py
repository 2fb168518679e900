"""Repositories and who may work in them: the repository page (clone URL, size, commit count, last push,
recent commits, its branches, proposals and collaborators) and the collaborator list.

Names, descriptions, visibility and the default branch are editable (the form checks that the branch
exists); ids and owners stay read-only, and repositories are neither added nor deleted here.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import DateTimeField, Max, OuterRef, Subquery, Sum
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from musehub_core.errors import MuseHubError
from repos import admin as limits
from repos import graph, models
from repos.admin.shared import ReadOnlyInline, link, short, short_size, size, table, when
from repos.services.repos import check_default_branch


class BranchInline(ReadOnlyInline):
    model = models.Branch
    fields = ["branch", "head", "updated_at"]
    readonly_fields = fields
    show_change_link = False  # the name links to the branch instead of a "View" column

    @admin.display(description="name")
    def branch(self, branch: models.Branch):
        return link("branch", branch.branch_id, branch.name)

    @admin.display(description="head commit")
    def head(self, branch: models.Branch):
        return link("commit", branch.head_commit_id, short(branch.head_commit_id))


class ProposalInline(ReadOnlyInline):
    model = models.Proposal
    fields = ["proposal", "state", "from_branch", "to_branch", "author", "created_at"]
    readonly_fields = fields
    show_change_link = False

    @admin.display(description="proposal")
    def proposal(self, proposal: models.Proposal):
        return link("proposal", proposal.proposal_id, f"#{proposal.number} {proposal.title}")


class CollaboratorInline(admin.TabularInline):
    model = models.Collaborator
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["user"]


class RepoForm(forms.ModelForm):
    class Meta:
        model = models.Repo
        fields = ["name", "description", "visibility", "default_branch"]

    def clean_default_branch(self) -> str:
        name = self.cleaned_data["default_branch"]
        try:
            return check_default_branch(self.instance, name)
        except MuseHubError as exc:
            raise forms.ValidationError(exc.message) from None


def _pack_bytes():
    rows = models.MPack.objects.filter(repo=OuterRef("pk")).exclude(kind=models.MPackKind.FETCH).order_by()
    return Subquery(rows.values("repo").annotate(total=Sum("size_bytes")).values("total")[:1])


def _last_push():
    rows = models.MPack.objects.filter(repo=OuterRef("pk"), kind=models.MPackKind.PUSH).order_by()
    return Subquery(
        rows.values("repo").annotate(last=Max("created_at")).values("last")[:1], output_field=DateTimeField()
    )


@admin.register(models.Repo)
class RepoAdmin(admin.ModelAdmin):
    form = RepoForm
    change_form_template = "admin/repos/repo/change_form.html"
    list_display = ["full_name", "visibility", "domain", "default_branch", "list_size", "last_push", "updated_at"]
    list_filter = ["visibility", "domain"]
    search_fields = ["repo_id", "owner", "slug", "name"]
    readonly_fields = [
        "repo_id",
        "owner",
        "owner_user",
        "owner_identity_id",
        "slug",
        "domain",
        "created_at",
        "updated_at",
        "size",
        "commit_count",
        "last_push",
        "contents",
    ]
    fields = [
        "repo_id", "owner", "owner_user", "owner_identity_id", "slug", "name", "description", "visibility",
        "domain", "default_branch", "size", "commit_count", "last_push", "contents", "created_at", "updated_at",
    ]  # fmt: skip
    inlines = [BranchInline, ProposalInline, CollaboratorInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(pack_bytes=_pack_bytes(), pushed_at=_last_push())

    def has_add_permission(self, request) -> bool:
        return False  # repositories are created by a push or the API, which compute their ids

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting would cascade into the ref tables

    @admin.display(description="full name", ordering="owner")
    def full_name(self, repo: models.Repo) -> str:
        return repo.full_name

    @admin.display(description="size (packs pushed)", ordering="pack_bytes")
    def size(self, repo: models.Repo) -> str:
        return size(getattr(repo, "pack_bytes", None) or 0)

    @admin.display(description="size", ordering="pack_bytes")
    def list_size(self, repo: models.Repo) -> str:
        return short_size(getattr(repo, "pack_bytes", None) or 0)

    @admin.display(description="last push", ordering="pushed_at")
    def last_push(self, repo: models.Repo):
        return getattr(repo, "pushed_at", None) or "— (never pushed)"

    @admin.display(description="commits")
    def commit_count(self, repo: models.Repo) -> str:
        return f"{models.CommitRef.objects.filter(repo=repo).count():,}"

    @admin.display(description="contents")
    def contents(self, repo: models.Repo):
        """Links to the lists of what this repository sees."""
        lists = [
            ("commit", "commits"),
            ("snapshot", "snapshots"),
            ("object", "objects"),
            ("mpack", "mpacks"),
            ("mpackindex", "index entries"),
        ]
        return format_html_join(
            " · ",
            '<a href="{}?{}">{}</a>',
            (
                (reverse(f"admin:repos_{name}_changelist"), urlencode({"repo": repo.repo_id}), label)
                for name, label in lists
            ),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        repo = self.get_object(request, unquote(object_id))
        if repo is not None:
            extra_context["clone_url"] = request.build_absolute_uri(f"/{repo.owner}/{repo.slug}")
            extra_context["recent_commits"] = recent_commits(repo)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        obj.updated_at = dt.datetime.now(dt.UTC)  # an admin edit is a change like any other
        super().save_model(request, obj, form, change)


def recent_commits(repo: models.Repo) -> SafeString:
    """Return the newest commits of *repo*'s default branch as a table (one walk, one query for their rows)."""
    head = models.Branch.objects.filter(repo=repo, name=repo.default_branch).values_list("head_commit_id", flat=True)
    head = head.first()
    if not head:
        return format_html("<p>{}</p>", f"The default branch {repo.default_branch!r} has no commits yet.")
    ids = graph.log_page(head, offset=0, limit=limits.RECENT_COMMITS)
    rows = models.Commit.objects.in_bulk(ids)
    shown = [
        (
            link("commit", cid, short(cid)),
            (rows[cid].message or "").splitlines()[0][:80] if rows[cid].message else "",
            rows[cid].author,
            when(rows[cid].timestamp),
        )
        for cid in ids
        if cid in rows
    ]
    return table(["commit", "message", "author", "time"], shown, note=f"Newest on {repo.default_branch}.")


@admin.register(models.Collaborator)
class CollaboratorAdmin(admin.ModelAdmin):
    list_display = ["repo", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["repo__repo_id", "repo__owner", "repo__slug", "user__username"]
    list_select_related = ["repo", "user"]
    raw_id_fields = ["repo", "user"]
