"""The Django admin: inspect every model, and edit only what cannot break the storage rule.

Content rows (commits, snapshots, objects, the graph, the ref tables, mpacks
and their index) are written by the hub's services alone: here they can be
viewed, never added, changed or deleted, so content ids and storage URIs stay
what their content says. Repositories, collaborators, tokens, branches and
proposals can be edited where that is safe (names, descriptions, roles,
revocation, proposal titles); ids and heads stay read-only.

The inspection pages: a repository shows its clone URL, size, commit count,
last push and recent commits, and lists its branches, proposals and
collaborators; a snapshot shows its manifest as a table of paths linked to
objects, a page at a time or one folder at a time; an object shows where its
bytes live (mpack, offset, length, encoding, cached or not) and previews text;
an mpack lists its index entries beside their paths and has a "Verify
integrity" action.

Built for a hub of millions of rows (issue 16): the content lists are newest
first (an index on the time column), filterable by repository (driven from the
repository's ref rows), never count a big table (``EstimatedCountPaginator``),
offer only filters whose choices are known (no ``DISTINCT`` over a big table),
run no query per row (repository columns are subqueries of the page's one
query), and search ids through the primary-key index (a full id exactly, a
prefix as a range). Text search (commit messages and authors, object paths)
uses the trigram indexes of migration 0009 on PostgreSQL, and elsewhere needs
a repository filter unless the table is small.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    DateTimeField,
    ExpressionWrapper,
    Max,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Concat
from django.urls import NoReverseMatch, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from musehub_core.errors import MuseHubError
from repos import graph, models, selectors
from repos.management.base import human_bytes
from repos.manifests import BULKY_FIELDS, load_manifest
from repos.services.integrity import verify_mpack
from repos.services.maintenance import estimated_rows
from repos.services.proposals import close_proposal, reopen_proposal
from repos.services.repos import check_default_branch
from repos.services.tokens import ACTIVE, revoke_tokens, token_state
from repos.storage.backend import get_backend
from repos.storage.layout import MPACK_SCHEME
from repos.storage.reader import read_blob

MANIFEST_ROWS = 500  # paths per page of a snapshot's manifest
INDEX_ROWS = 500
REF_ROWS = 50
RECENT_COMMITS = 10
PREVIEW_BYTES = 4096
PREVIEW_READ_MAX = 1024 * 1024  # larger blobs are not read from storage just to preview them
COUNT_CAP = 10_000  # lists count at most this many rows; past it the planner's estimate stands in
SMALL_TABLE = 100_000  # text search without an index is allowed on tables up to about this many rows

admin.site.site_header = "MuseHub administration"
admin.site.site_title = "MuseHub admin"
admin.site.index_title = "Repositories, history and storage"
admin.site.enable_nav_sidebar = False  # the lists need the width (their columns fit a 1400 px screen)


# --- rendering helpers ----------------------------------------------------------------------------


def short(content_id: str | None) -> str:
    """Return a content id shortened for tables: ``sha256:1a2b3c4d5e6f…``."""
    if not content_id:
        return "—"
    return content_id[:19] + "…" if len(content_id) > 19 else content_id


def link(model_name: str, pk: object, text: str | None = None) -> SafeString | str:
    """Return a link to the admin change page of *pk*, or the bare text when there is none."""
    if pk in (None, ""):
        return "—"
    try:
        url = reverse(f"admin:repos_{model_name}_change", args=[quote(pk)])
    except NoReverseMatch:
        return str(text or pk)
    return format_html('<a href="{}" title="{}">{}</a>', url, str(pk), text or str(pk))


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], *, note: str = "") -> SafeString:
    """Return an HTML table (cells already escaped or safe) with an optional note below."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    caption = format_html("<p>{}</p>", note) if note else ""
    return format_html(
        '<table class="musehub-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}', head, body, caption
    )


def plural(count: int, one: str, many: str | None = None) -> str:
    """Return ``1 blob`` / ``2 blobs`` / ``1 index entry`` / ``3 index entries`` (*many* when not just +s)."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def limited_note(shown: int, total: int, what: str, many: str | None = None) -> str:
    if total > shown:
        return f"Showing the first {shown:,} of {plural(total, what, many)}."
    return f"{plural(total, what, many)}." if total else f"No {many or what + 's'}."


def size(count: int | None) -> str:
    """Return a byte count as people read it (``12.3 MiB``), with the exact figure beside it when it is large."""
    if count is None:
        return "—"
    return human_bytes(count) if count < 1024 else f"{human_bytes(count)} ({count:,} bytes)"


def short_size(count: int | None) -> str:
    """Return a byte count for a list column: ``12.3 MiB`` (the exact figure is on the row's page)."""
    return "—" if count is None else human_bytes(count)


def when(moment) -> str:
    """Return a time for a table cell: ``2026-11-29 12:00 UTC``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


_ID_QUERY = re.compile(r"^(?:sha256:)?([0-9a-f]{4,64})$")
_NEXT_HEX = dict(zip("0123456789abcdef", "123456789abcdefg", strict=True))


def id_prefix_range(query: str) -> tuple[str, str | None] | None:
    """Return how to find the content ids *query* names: (id, None) for a full id, (low, high) for a prefix.

    A prefix of at least 4 hex digits (with or without ``sha256:``) becomes the
    range ``low <= id < high`` with the last digit raised by one, which the
    plain btree index of an id column answers in any collation (digits sort
    before letters and letters in order); no ``LIKE``, so no ``_like`` index is
    needed. None when *query* is not an id.
    """
    match = _ID_QUERY.match(query.strip().lower())
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) == 64:
        return "sha256:" + digits, None
    return "sha256:" + digits, "sha256:" + digits[:-1] + _NEXT_HEX[digits[-1]]


def id_match(field: str, query: str) -> Q | None:
    """Return the filter on id column *field* for *query* (see :func:`id_prefix_range`), or None."""
    found = id_prefix_range(query)
    if found is None:
        return None
    low, high = found
    return Q(**{field: low}) if high is None else Q(**{f"{field}__gte": low, f"{field}__lt": high})


@functools.cache
def trigram_indexed() -> bool:
    """Return True when the trigram indexes of migration 0009 exist (PostgreSQL with pg_trgm)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'musehub_commits_message_trgm'")
        return cursor.fetchone() is not None


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a big table: it counts up to ``COUNT_CAP`` rows, then trusts the planner.

    The count decides only how many page links the list shows; past the cap the
    planner's estimate of the (filtered) query stands in on PostgreSQL. SQLite
    (the embedded default, for small hubs) counts exactly.
    """

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        counted = rows.order_by().values("pk")[: COUNT_CAP + 1].count()  # no annotations: only the rows
        if counted <= COUNT_CAP:
            return counted
        if connection.vendor == "postgresql":
            plan = json.loads(rows.order_by().values("pk").explain(format="json"))
            return max(counted, int(plan[0]["Plan"]["Plan Rows"]))
        return super().count  # SQLite (the embedded default, a small hub): count exactly


class RepoFilter(admin.SimpleListFilter):
    """Show only what one repository sees (``?repo=<repo id>``): driven from that repository's ref rows.

    The choices are the most recently updated repositories (and the chosen
    one); every repository page links to its filtered lists.
    """

    title = "repository"
    parameter_name = "repo"
    ref_model = None  # the *Ref model, or None when the model has a repo column
    ref_field = ""

    def lookups(self, request, model_admin):
        recent = list(models.Repo.objects.order_by("-updated_at").values_list("repo_id", "owner", "slug")[:10])
        choices = [(repo_id, f"{owner}/{slug}") for repo_id, owner, slug in recent]
        if self.value() and self.value() not in {c[0] for c in choices}:
            chosen = models.Repo.objects.filter(pk=self.value()).values_list("owner", "slug").first()
            if chosen:
                choices.append((self.value(), f"{chosen[0]}/{chosen[1]}"))
        return choices

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if self.ref_model is None:
            return queryset.filter(repo_id=self.value())
        seen = self.ref_model.objects.filter(repo_id=self.value()).values(self.ref_field)
        return queryset.filter(pk__in=seen)


def repo_filter(ref_model, ref_field: str) -> type[RepoFilter]:
    return type(f"{ref_model.__name__}RepoFilter", (RepoFilter,), {"ref_model": ref_model, "ref_field": ref_field})


class ObjectRepoFilter(RepoFilter):
    """Index rows of the objects one repository sees."""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        seen = models.ObjectRef.objects.filter(repo_id=self.value()).values("object_id")
        return queryset.filter(entity_id__in=seen)


def first_repo(ref_model, field: str) -> Subquery:
    """Return a subquery naming one repository (owner/slug) whose *ref_model* row names the outer row."""
    rows = ref_model.objects.filter(**{field: OuterRef("pk")}).order_by("pk")
    return Subquery(rows.annotate(name=Concat("repo__owner", Value("/"), "repo__slug")).values("name")[:1])


def repo_count(ref_model, field: str) -> Subquery:
    rows = ref_model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field)
    return Subquery(rows.annotate(n=Count("pk")).values("n")[:1])


def seen_in(row) -> str:
    name = getattr(row, "repo_name", None)
    if not name:
        return "— (no repository)"
    others = (getattr(row, "repo_total", 1) or 1) - 1
    return f"{name} (+{others})" if others else name


def repos_seeing(ref_model, field: str, content_id: str) -> SafeString:
    """Return the repositories whose *ref_model* rows name *content_id*, as links."""
    rows = ref_model.objects.filter(**{field: content_id}).select_related("repo")[:REF_ROWS]
    return format_html_join(", ", "{}", ((link("repo", r.repo_id, r.repo.full_name),) for r in rows)) or "—"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the hub's services write: viewable here, never added, changed or deleted."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False  # the unfiltered total would be a second count of the whole table
    show_facets = admin.ShowFacets.NEVER  # facet counts are one COUNT per filter choice over the table
    list_per_page = 50
    id_fields: tuple[str, ...] = ()  # id columns searched by exact id or prefix (their btree index)
    text_fields: tuple[str, ...] = ()  # columns searched as text (see text_search_allowed)

    def get_search_fields(self, request):
        return ["—"] if self.id_fields or self.text_fields else super().get_search_fields(request)

    def text_search_allowed(self, request) -> bool:
        """Text search reads an index (PostgreSQL trigrams), one repository's rows, or a small table."""
        if request.GET.get(RepoFilter.parameter_name):
            return True
        rows = estimated_rows(self.model)
        return rows is not None and rows <= SMALL_TABLE

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term or not (self.id_fields or self.text_fields):
            return super().get_search_results(request, queryset, search_term)
        wanted = Q()
        for field in self.id_fields:
            found = id_match(field, term)
            if found is not None:
                wanted |= found
        if self.text_fields and not wanted:  # an id is searched as an id only: an OR would defeat its index
            if self.text_search_allowed(request):
                for field in self.text_fields:
                    wanted |= Q(**{f"{field}__icontains": term})
            else:
                self.message_user(
                    request,
                    f"Searching {self.model._meta.verbose_name_plural} by text would read the whole table: "
                    "choose a repository in the filter first, or search by id (at least 4 hex digits).",
                    messages.WARNING,
                )
        if not wanted and not self.text_fields:
            self.message_user(
                request,
                f"{self.model._meta.verbose_name_plural.capitalize()} are searched by id: a full id or at least "
                "4 hex digits of one.",
                messages.WARNING,
            )
        if not wanted:
            return queryset.none(), False
        return queryset.filter(wanted), False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- repositories, people and tokens --------------------------------------------------------------


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
    ids = graph.log_page(head, offset=0, limit=RECENT_COMMITS)
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


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens: only a hash is stored, and even that is shown shortened; new tokens come from ``musehub_token``."""

    list_display = ["prefix", "user", "name", "created_at", "expires_at", "revoked_at", "last_used_at", "active"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), ("expires_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "prefix", "fingerprint", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["user", "prefix", "fingerprint", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="hash (shortened)")
    def fingerprint(self, token: models.ApiToken) -> str:
        return f"sha256 {token.token_hash[:8]}…"

    @admin.display(boolean=True)
    def active(self, token: models.ApiToken) -> bool:
        return token_state(token) == ACTIVE

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = revoke_tokens(queryset)
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(models.Branch)
class BranchAdmin(admin.ModelAdmin):
    """Branches move only by push or merge (their heads are read-only); a branch may be deleted."""

    list_display = ["name", "repo", "head", "updated_at"]
    search_fields = ["branch_id", "name", "head_commit_id", "repo__owner", "repo__slug"]
    list_filter = ["repo__visibility"]
    list_select_related = ["repo"]
    fields = ["branch_id", "repo", "name", "head", "created_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="head commit", ordering="head_commit_id")
    def head(self, branch: models.Branch):
        return link("commit", branch.head_commit_id, short(branch.head_commit_id))


@admin.register(models.Proposal)
class ProposalAdmin(admin.ModelAdmin):
    """Titles and bodies are editable; state changes go through the proposal services (actions)."""

    list_display = ["number", "title", "repo", "state", "from_branch", "to_branch", "author", "created_at", "merged_at"]
    list_filter = ["state", "merge_strategy"]
    search_fields = [
        "title", "repo__repo_id", "repo__owner", "repo__slug", "author", "merged_by", "head_commit_id",
        "base_commit_id", "merge_commit_id",
    ]  # fmt: skip
    list_select_related = ["repo"]
    fields = [
        "proposal_id", "repo", "number", "title", "body", "state", "from_branch", "to_branch", "base", "head",
        "merged_head", "merge_commit", "merge_strategy", "author", "merged_by", "created_at", "updated_at",
        "merged_at", "closed_at",
    ]  # fmt: skip
    readonly_fields = [f for f in fields if f not in ("title", "body")]
    actions = ["close", "reopen"]

    def has_add_permission(self, request) -> bool:
        return False  # proposals are opened through the API (create_proposal checks the branches)

    @admin.display(description="merge base")
    def base(self, proposal: models.Proposal):
        return link("commit", proposal.base_commit_id, short(proposal.base_commit_id))

    @admin.display(description="source head when opened")
    def head(self, proposal: models.Proposal):
        return link("commit", proposal.head_commit_id, short(proposal.head_commit_id))

    @admin.display(description="source head merged")
    def merged_head(self, proposal: models.Proposal):
        """Return what the merge took from the source, which may be newer than the head when it was opened."""
        if proposal.state != models.ProposalState.MERGED or not proposal.merge_commit_id:
            return "— (not merged)"
        if proposal.merge_strategy == "squash":
            return "not recorded (a squash commit keeps only the target as parent)"
        parents = (
            models.CommitGraph.objects.filter(pk=proposal.merge_commit_id).values_list("parent_ids", flat=True).first()
        )
        merged = parents[1] if proposal.merge_strategy == "merge" and parents and len(parents) == 2 else None
        merged = merged or proposal.merge_commit_id  # a fast-forward (or a source already merged) moved the target
        return link("commit", merged, short(merged))

    @admin.display(description="merge commit")
    def merge_commit(self, proposal: models.Proposal):
        return link("commit", proposal.merge_commit_id, short(proposal.merge_commit_id))

    def _each(self, request, queryset, service, verb: str) -> None:
        done = 0
        for proposal in queryset.select_related("repo"):
            try:
                service(proposal.repo_id, proposal.proposal_id, acting_user=request.user)
                done += 1
            except MuseHubError as exc:
                self.message_user(request, f"#{proposal.number} in {proposal.repo}: {exc.message}", messages.WARNING)
        self.message_user(request, f"{verb} {done} proposal(s).", messages.SUCCESS)

    @admin.action(description="Close the selected proposals")
    def close(self, request, queryset):
        self._each(request, queryset, close_proposal, "Closed")

    @admin.action(description="Reopen the selected proposals")
    def reopen(self, request, queryset):
        self._each(request, queryset, reopen_proposal, "Reopened")


@admin.register(models.MPackUpload)
class MPackUploadAdmin(ReadOnlyAdmin):
    list_display = ["upload_id", "repo", "user", "key", "human_size", "promoted", "created_at", "expires_at"]
    search_fields = ["upload_id", "mpack_key", "repo__owner", "repo__slug", "user__username"]
    list_select_related = ["repo", "user"]
    ordering = ["-created_at"]

    @admin.display(description="mpack key", ordering="mpack_key")
    def key(self, upload: models.MPackUpload) -> str:
        return short(upload.mpack_key)

    @admin.display(description="size", ordering="size_bytes")
    def human_size(self, upload: models.MPackUpload) -> str:
        return short_size(upload.size_bytes)

    def has_delete_permission(self, request, obj=None) -> bool:
        return True  # an upload slot is not content; clearing a stale one is harmless


@admin.register(models.StagedObject)
class StagedObjectAdmin(ReadOnlyAdmin):
    """Blobs a muse CLI push uploaded by presigned URL, waiting for their push call to fold them into an mpack."""

    list_display = ["object", "repo", "created_at"]
    search_fields = ["object_id", "repo__repo_id", "repo__owner", "repo__slug"]
    list_select_related = ["repo"]
    ordering = ["-created_at"]

    @admin.display(description="object id", ordering="object_id")
    def object(self, staged: models.StagedObject) -> str:
        return short(staged.object_id)


# --- history: commits, graph, snapshots -----------------------------------------------------------


@admin.register(models.Commit)
class CommitAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "summary", "author", "repository", "timestamp"]
    list_filter = [repo_filter(models.CommitRef, "commit_id"), ("storage_uri", admin.EmptyFieldListFilter)]
    ordering = ["-timestamp"]
    id_fields = ("commit_id",)
    text_fields = ("message", "author")
    fields = [
        "commit_id", "parents", "snapshot", "branch", "message", "author", "committed_at", "timestamp", "generation",
        "metadata", "storage_uri", "seen_by", "changes",
    ]  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                repo_name=first_repo(models.CommitRef, "commit_id"),
                repo_total=repo_count(models.CommitRef, "commit_id"),
            )
        )

    def text_search_allowed(self, request) -> bool:
        return trigram_indexed() or super().text_search_allowed(request)

    @admin.display(description="commit id", ordering="commit_id")
    def short_id(self, commit: models.Commit) -> str:
        return short(commit.commit_id)

    @admin.display(description="message")
    def summary(self, commit: models.Commit) -> str:
        first = (commit.message or "").splitlines()[0] if commit.message else ""
        return first[:80] + ("…" if len(first) > 80 else "")

    @admin.display(description="repository")
    def repository(self, commit: models.Commit) -> str:
        return seen_in(commit)

    @admin.display(description="parents")
    def parents(self, commit: models.Commit):
        return format_html_join(", ", "{}", ((link("commit", p, short(p)),) for p in commit.parent_ids)) or "— (root)"

    @admin.display(description="snapshot")
    def snapshot(self, commit: models.Commit):
        return link("snapshot", commit.snapshot_id)

    @admin.display(description="generation")
    def generation(self, commit: models.Commit):
        generation = (
            models.CommitGraph.objects.filter(commit_id=commit.commit_id).values_list("generation", flat=True).first()
        )
        return "— (no graph row)" if generation is None else generation

    @admin.display(description="repositories that see it")
    def seen_by(self, commit: models.Commit):
        return repos_seeing(models.CommitRef, "commit_id", commit.commit_id)

    @admin.display(description="changes against the first parent")
    def changes(self, commit: models.Commit):
        diff = selectors.commit_changes(commit)
        rows = [(kind, path) for kind, paths in diff.as_dict().items() for path in paths]
        shown = rows[:MANIFEST_ROWS]
        return table(["change", "path"], shown, note=limited_note(len(shown), len(rows), "changed path"))


@admin.register(models.CommitGraph)
class CommitGraphAdmin(ReadOnlyAdmin):
    list_display = ["commit", "generation", "parent_count", "snapshot"]
    ordering = ["-generation"]
    id_fields = ("commit_id",)
    fields = ["commit", "generation", "parents", "snapshot"]
    readonly_fields = fields

    @admin.display(description="commit", ordering="commit_id")
    def commit(self, row: models.CommitGraph):
        return link("commit", row.commit_id, short(row.commit_id))

    @admin.display(description="parents")
    def parent_count(self, row: models.CommitGraph) -> int:
        return len(row.parent_ids)

    @admin.display(description="parents")
    def parents(self, row: models.CommitGraph):
        return format_html_join(", ", "{}", ((link("commitgraph", p, short(p)),) for p in row.parent_ids)) or "—"

    @admin.display(description="snapshot")
    def snapshot(self, row: models.CommitGraph):
        return link("snapshot", row.snapshot_id, short(row.snapshot_id))


@admin.register(models.Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    change_form_template = "admin/repos/snapshot/change_form.html"
    list_display = ["short_id", "entry_count", "depth", "repository", "created_at"]
    list_filter = [
        repo_filter(models.SnapshotRef, "snapshot_id"),
        ("base_id", admin.EmptyFieldListFilter),
        ("storage_uri", admin.EmptyFieldListFilter),
    ]
    ordering = ["-created_at"]
    id_fields = ("snapshot_id",)
    fields = ["snapshot_id", "entry_count", "base_id", "depth", "created_at", "storage_uri", "seen_by"]
    readonly_fields = fields

    def get_queryset(self, request):
        # Manifests can be large: load one only when a change page renders it.
        return (
            super()
            .get_queryset(request)
            .defer(*BULKY_FIELDS)
            .annotate(
                repo_name=first_repo(models.SnapshotRef, "snapshot_id"),
                repo_total=repo_count(models.SnapshotRef, "snapshot_id"),
            )
        )

    @admin.display(description="snapshot id", ordering="snapshot_id")
    def short_id(self, snapshot: models.Snapshot) -> str:
        return short(snapshot.snapshot_id)

    @admin.display(description="repository")
    def repository(self, snapshot: models.Snapshot) -> str:
        return seen_in(snapshot)

    @admin.display(description="repositories that see it")
    def seen_by(self, snapshot: models.Snapshot):
        return repos_seeing(models.SnapshotRef, "snapshot_id", snapshot.snapshot_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        snapshot = self.get_object(request, unquote(object_id))
        if snapshot is not None:
            extra_context["manifest"] = manifest_page(
                snapshot.snapshot_id, folder=request.GET.get("folder", ""), page=request.GET.get("page", "1")
            )
        return super().change_view(request, object_id, form_url, extra_context)


def manifest_page(snapshot_id: str, *, folder: str, page: str) -> SafeString:
    """Return one page of a manifest's paths (under *folder* when given), with links to its sub-folders and pages."""
    manifest = load_manifest(snapshot_id)
    folder = folder.strip("/")
    prefix = folder + "/" if folder else ""
    paths = sorted(p for p in manifest if p.startswith(prefix))
    subfolders: dict[str, int] = {}
    for path in paths:
        rest = path[len(prefix) :]
        if "/" in rest:
            name = rest.split("/", 1)[0]
            subfolders[name] = subfolders.get(name, 0) + 1
    pages = max(1, -(-len(paths) // MANIFEST_ROWS))
    number = min(max(int(page) if page.isdigit() else 1, 1), pages)
    shown = paths[(number - 1) * MANIFEST_ROWS : number * MANIFEST_ROWS]
    sizes = dict(
        models.Object.objects.filter(object_id__in={manifest[p] for p in shown}).values_list("object_id", "size_bytes")
    )

    def url(**params: object) -> str:
        query = {"folder": folder, "page": number, **params}
        return "?" + urlencode({k: v for k, v in query.items() if v not in ("", None)})

    crumbs = [format_html('<a href="{}">(root)</a>', url(folder="", page=1))]
    parts = folder.split("/") if folder else []
    for depth, part in enumerate(parts):
        crumbs.append(format_html('<a href="{}">{}</a>', url(folder="/".join(parts[: depth + 1]), page=1), part))
    nav = format_html("<p>Folder: {}</p>", format_html_join(" / ", "{}", ((c,) for c in crumbs)))
    if subfolders:
        links = (
            (url(folder=prefix + name, page=1), name, plural(count, "path"))
            for name, count in sorted(subfolders.items())
        )
        nav += format_html("<p>Sub-folders: {}</p>", format_html_join(", ", '<a href="{}">{}/</a> ({})', links))
    rows = [
        (path, link("object", manifest[path], short(manifest[path])), size(sizes.get(manifest[path]))) for path in shown
    ]
    where = f" under {folder}/" if folder else ""
    if len(paths) > MANIFEST_ROWS:
        start = (number - 1) * MANIFEST_ROWS
        note = f"Paths {start + 1:,}-{start + len(shown):,} of {len(paths):,}{where} (page {number} of {pages})."
    else:
        note = limited_note(len(shown), len(paths), "path") if not where else f"{plural(len(paths), 'path')}{where}."
    pager = ""
    if pages > 1:
        steps = []
        if number > 1:
            steps.append(format_html('<a href="{}">previous</a>', url(page=number - 1)))
        if number < pages:
            steps.append(format_html('<a href="{}">next</a>', url(page=number + 1)))
        pager = format_html("<p>{}</p>", format_html_join(" · ", "{}", ((step,) for step in steps)))
    return nav + table(["path", "object", "size"], rows, note=note) + pager


# --- blobs: objects, mpacks and the index ---------------------------------------------------------


class CachedFilter(admin.SimpleListFilter):
    title = "content cache"
    parameter_name = "cached"

    def lookups(self, request, model_admin):
        return [("yes", "Cached"), ("no", "Not cached")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(content_cache__isnull=self.value() == "no")
        return queryset


class StorageFilter(admin.SimpleListFilter):
    title = "storage"
    parameter_name = "storage"

    def lookups(self, request, model_admin):
        return [("mpack", "In an mpack"), ("legacy", "Legacy per-object URI"), ("none", "No storage URI")]

    def queryset(self, request, queryset):
        if self.value() == "mpack":
            return queryset.filter(storage_uri__startswith=MPACK_SCHEME)
        if self.value() == "legacy":
            return queryset.exclude(storage_uri__startswith=MPACK_SCHEME).exclude(storage_uri__isnull=True)
        if self.value() == "none":
            return queryset.filter(storage_uri__isnull=True)
        return queryset


@admin.register(models.Object)
class ObjectAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "list_size", "path", "repository", "cached", "created_at"]
    list_filter = [repo_filter(models.ObjectRef, "object_id"), CachedFilter, StorageFilter]
    ordering = ["-created_at"]
    id_fields = ("object_id",)
    text_fields = ("path",)
    fields = [
        "object_id",
        "human_size",
        "path",
        "storage_uri",
        "cached",
        "created_at",
        "location",
        "seen_by",
        "preview",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        is_cached = ExpressionWrapper(Q(content_cache__isnull=False), output_field=BooleanField())
        # The cached bytes themselves load only when a change page needs them.
        return (
            super()
            .get_queryset(request)
            .annotate(
                is_cached=is_cached,
                repo_name=first_repo(models.ObjectRef, "object_id"),
                repo_total=repo_count(models.ObjectRef, "object_id"),
            )
            .defer("content_cache")
        )

    @admin.display(description="object id", ordering="object_id")
    def short_id(self, obj: models.Object) -> str:
        return short(obj.object_id)

    @admin.display(description="size", ordering="size_bytes")
    def human_size(self, obj: models.Object) -> str:
        return size(obj.size_bytes)

    @admin.display(description="size", ordering="size_bytes")
    def list_size(self, obj: models.Object) -> str:
        return short_size(obj.size_bytes)

    @admin.display(description="repository")
    def repository(self, obj: models.Object) -> str:
        return seen_in(obj)

    @admin.display(boolean=True, description="cached", ordering="is_cached")
    def cached(self, obj: models.Object) -> bool:
        # Never fall back to obj.content_cache here: it is deferred, and reading it is one query per row.
        if hasattr(obj, "is_cached"):
            return bool(obj.is_cached)
        return obj.content_cache is not None

    @admin.display(description="where its bytes live")
    def location(self, obj: models.Object):
        entries = list(models.MPackIndex.objects.filter(entity_id=obj.object_id).order_by("mpack_id"))
        packs = models.MPack.objects.in_bulk([e.mpack_id for e in entries])
        rows = [
            (
                link("mpack", e.mpack_id, short(e.mpack_id)),
                packs[e.mpack_id].kind if e.mpack_id in packs else "— (no mpack row)",
                "—" if e.offset is None else e.offset,
                "—" if e.length is None else e.length,
                e.encoding or "raw",
            )
            for e in entries
        ]
        cached = "yes, in content_cache" if self.cached(obj) else "no"
        return table(
            ["mpack", "kind", "offset", "length", "encoding"],
            rows,
            note=f"{plural(len(rows), 'index entry', 'index entries')}; cached: {cached}.",
        )

    @admin.display(description="repositories that see it")
    def seen_by(self, obj: models.Object):
        return repos_seeing(models.ObjectRef, "object_id", obj.object_id)

    @admin.display(description="preview")
    def preview(self, obj: models.Object):
        if obj.content_cache is None and obj.size_bytes > PREVIEW_READ_MAX:
            return f"Not previewed: {obj.size_bytes} bytes is more than the admin reads for a preview."
        try:
            raw = read_blob(obj.object_id)
        except MuseHubError as exc:
            return format_html("<strong>The bytes could not be read:</strong> {}", exc.message)
        head = raw[:PREVIEW_BYTES]
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the 4 KiB boundary is still text.
            if len(raw) > PREVIEW_BYTES and exc.start >= len(head) - 3:
                text = head[: exc.start].decode("utf-8")
            else:
                return f"Binary content ({len(raw)} bytes); no text preview."
        if "\x00" in text:
            return f"Binary content ({len(raw)} bytes); no text preview."
        more = f"First {PREVIEW_BYTES} of {len(raw)} bytes." if len(raw) > PREVIEW_BYTES else f"{len(raw)} bytes."
        return format_html(
            '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre><p>{}</p>', text, more
        )


@admin.register(models.MPack)
class MPackAdmin(ReadOnlyAdmin):
    list_display = [
        "short_id",
        "kind",
        "repo",
        "list_size",
        "commit_count",
        "snapshot_count",
        "blob_count",
        "created_at",
    ]
    ordering = ["-created_at"]
    list_select_related = ["repo"]
    id_fields = ("mpack_id",)
    text_fields = ("repo__owner", "repo__slug")  # packs are few (one per push before a repack)
    fields = [
        "mpack_id", "kind", "repo", "human_size", "commit_count", "snapshot_count", "blob_count", "created_at",
        "damaged_at", "in_storage", "index_entries",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["verify_integrity"]

    def get_list_filter(self, request):
        return ["kind", RepoColumnFilter]

    @admin.display(description="mpack id", ordering="mpack_id")
    def short_id(self, mpack: models.MPack) -> str:
        return short(mpack.mpack_id)

    @admin.display(description="size", ordering="size_bytes")
    def human_size(self, mpack: models.MPack) -> str:
        return size(mpack.size_bytes)

    @admin.display(description="size", ordering="size_bytes")
    def list_size(self, mpack: models.MPack) -> str:
        return short_size(mpack.size_bytes)

    @admin.display(description="in storage")
    def in_storage(self, mpack: models.MPack) -> str:
        try:
            return "yes" if get_backend().mpack_exists(mpack.mpack_id) else "NO: missing from storage"
        except MuseHubError as exc:
            return f"unknown: {exc.message}"

    @admin.display(description="index entries")
    def index_entries(self, mpack: models.MPack):
        entries = models.MPackIndex.objects.filter(mpack_id=mpack.mpack_id).order_by("offset", "entity_id")
        total = entries.count()
        shown = list(entries[:INDEX_ROWS])
        paths = dict(
            models.Object.objects.filter(object_id__in=[e.entity_id for e in shown]).values_list("object_id", "path")
        )
        rows = [
            (
                link("object", e.entity_id, short(e.entity_id)),
                paths.get(e.entity_id) or "—",
                e.entity_type,
                "—" if e.offset is None else e.offset,
                "—" if e.length is None else size(e.length),
                e.encoding or "raw",
            )
            for e in shown
        ]
        every = ""
        if total > len(shown):
            url = reverse("admin:repos_mpackindex_changelist") + "?" + urlencode({"mpack": mpack.mpack_id})
            every = format_html(
                ' <a href="{}">All {} of this pack</a>.', url, plural(total, "index entry", "index entries")
            )
        return (
            table(
                ["object", "path (a hint)", "type", "offset", "length", "encoding"],
                rows,
                note=limited_note(len(shown), total, "index entry", "index entries"),
            )
            + every
        )

    @admin.action(description="Verify integrity of the selected mpacks", permissions=["view"])
    def verify_integrity(self, request, queryset):
        for mpack_id in queryset.values_list("mpack_id", flat=True):
            try:
                check = verify_mpack(mpack_id)
            except MuseHubError as exc:
                self.message_user(request, f"Pack {mpack_id} could not be checked: {exc.message}", messages.ERROR)
                continue
            if check.ok:
                entries = (
                    f"all {plural(check.index_rows, 'index entry', 'index entries')} decode to their objects"
                    if check.index_rows
                    else "it has no index entries"
                )
                self.message_user(
                    request,
                    f"Pack {mpack_id} is sound: its bytes match its key and {entries} "
                    f"({plural(check.blobs, 'blob')} verified).",
                    messages.SUCCESS,
                )
            else:
                shown = "; ".join(check.problems[:5])
                more = f" (and {len(check.problems) - 5} more)" if len(check.problems) > 5 else ""
                self.message_user(
                    request,
                    f"Pack {mpack_id} FAILED its check with {plural(len(check.problems), 'problem')}: {shown}{more}",
                    messages.ERROR,
                )


class RepoColumnFilter(RepoFilter):
    """Rows of one repository through their own repository column (packs, ref rows)."""


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices are known in advance, so no ``SELECT DISTINCT`` runs over a big table."""

    field = ""
    options: list[tuple[str, str]] = []

    def lookups(self, request, model_admin):
        return self.options

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        value = "" if self.value() == "raw" else self.value()
        return queryset.filter(**{self.field: value})


class EncodingFilter(FixedChoicesFilter):
    title = "encoding"
    parameter_name = "encoding"
    field = "encoding"
    options = [("raw", "raw"), ("zstd", "zstd")]


class EntityTypeFilter(FixedChoicesFilter):
    title = "entity type"
    parameter_name = "entity_type"
    field = "entity_type"
    options = [("object", "object")]


class MPackFilter(admin.SimpleListFilter):
    """The entries of one pack (``?mpack=<mpack id>``), linked from each pack's page."""

    title = "mpack"
    parameter_name = "mpack"

    def lookups(self, request, model_admin):
        return [(self.value(), short(self.value()))] if self.value() else []

    def queryset(self, request, queryset):
        return queryset.filter(mpack_id=self.value()) if self.value() else queryset


@admin.register(models.MPackIndex)
class MPackIndexAdmin(ReadOnlyAdmin):
    list_display = ["entity", "path", "pack", "offset", "human_length", "encoding", "created_at"]
    list_filter = [ObjectRepoFilter, MPackFilter, EncodingFilter, EntityTypeFilter]
    ordering = ["-pk"]
    id_fields = ("entity_id", "mpack_id")
    fields = ["entity", "path", "pack", "entity_type", "offset", "length", "encoding", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        paths = models.Object.objects.filter(pk=OuterRef("entity_id")).values("path")[:1]
        return super().get_queryset(request).annotate(object_path=Coalesce(Subquery(paths), Value("")))

    @admin.display(description="object", ordering="entity_id")
    def entity(self, row: models.MPackIndex):
        return link("object", row.entity_id, short(row.entity_id))

    @admin.display(description="path (a hint)")
    def path(self, row: models.MPackIndex) -> str:
        return getattr(row, "object_path", "") or "—"

    @admin.display(description="mpack", ordering="mpack_id")
    def pack(self, row: models.MPackIndex):
        return link("mpack", row.mpack_id, short(row.mpack_id))

    @admin.display(description="length", ordering="length")
    def human_length(self, row: models.MPackIndex) -> str:
        return short_size(row.length)


# --- which repository sees what -------------------------------------------------------------------


class RefAdmin(ReadOnlyAdmin):
    """A ``*Ref`` table: one row per (repository, content id) the repository may see."""

    target = ""  # the content model's admin name: "commit", "snapshot" or "object"
    list_select_related = ["repo"]
    ordering = ["-pk"]

    def get_list_display(self, request):
        return ["repo", "content"]

    def get_list_filter(self, request):
        return [RepoColumnFilter]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        found = id_match(f"{self.target}_id", term)
        if found is not None:
            return queryset.filter(found), False
        repos = models.Repo.objects.filter(Q(owner__icontains=term) | Q(slug__icontains=term)).values("pk")
        return queryset.filter(repo_id__in=repos), False

    def get_search_fields(self, request):
        return ["—"]

    def get_fields(self, request, obj=None):
        return ["repo", "content"]

    def get_readonly_fields(self, request, obj=None):
        return ["repo", "content"]

    @admin.display(description="content")
    def content(self, row):
        content_id = getattr(row, f"{self.target}_id")
        return link(self.target, content_id, short(content_id))


@admin.register(models.CommitRef)
class CommitRefAdmin(RefAdmin):
    target = "commit"


@admin.register(models.SnapshotRef)
class SnapshotRefAdmin(RefAdmin):
    target = "snapshot"


@admin.register(models.ObjectRef)
class ObjectRefAdmin(RefAdmin):
    target = "object"


# --- releases, tags and published domains --------------------------------------------------------


@admin.register(models.Release)
class ReleaseAdmin(admin.ModelAdmin):
    """Releases come from ``muse release push`` (which checks the commit); title and notes are editable."""

    list_display = ["tag", "repo", "channel", "is_draft", "commit", "title", "author", "created_at"]
    list_filter = ["channel", "is_draft"]
    search_fields = ["tag", "title", "commit_id", "author", "repo__repo_id", "repo__owner", "repo__slug"]
    list_select_related = ["repo"]
    fields = [
        "release_id", "repo", "tag", "commit", "snapshot", "title", "notes", "channel", "is_draft", "semver",
        "metadata", "author", "created_at", "pushed_at",
    ]  # fmt: skip
    readonly_fields = [f for f in fields if f not in ("title", "notes")]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="commit", ordering="commit_id")
    def commit(self, release: models.Release):
        return link("commit", release.commit_id, short(release.commit_id))

    @admin.display(description="snapshot")
    def snapshot(self, release: models.Release):
        return link("snapshot", release.snapshot_id, short(release.snapshot_id))


@admin.register(models.Tag)
class TagAdmin(admin.ModelAdmin):
    """Tags on commits, as pushed; they can be deleted, not edited."""

    list_display = ["name", "repo", "commit", "created_at", "pushed_at"]
    search_fields = ["name", "commit_id", "repo__repo_id", "repo__owner", "repo__slug"]
    list_select_related = ["repo"]
    fields = ["repo", "name", "commit", "created_at", "pushed_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="commit", ordering="commit_id")
    def commit(self, tag: models.Tag):
        return link("commit", tag.commit_id, short(tag.commit_id))


@admin.register(models.Domain)
class DomainAdmin(admin.ModelAdmin):
    """Published Muse domains (``muse domains publish``); the manifest is shown, never edited."""

    list_display = ["scoped_id", "display_name", "version", "viewer_type", "publisher", "updated_at"]
    list_filter = ["viewer_type"]
    search_fields = ["author_slug", "slug", "display_name", "description", "manifest_hash"]
    list_select_related = ["publisher"]
    fields = [
        "domain_id", "author_slug", "slug", "publisher", "display_name", "description", "version", "viewer_type",
        "manifest", "manifest_hash", "created_at", "updated_at",
    ]  # fmt: skip
    readonly_fields = [f for f in fields if f not in ("display_name", "description")]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="@publisher/slug", ordering="author_slug")
    def scoped_id(self, domain: models.Domain) -> str:
        return domain.scoped_id

    @admin.display(description="capability manifest")
    def manifest(self, domain: models.Domain):
        return format_html("<pre>{}</pre>", json.dumps(domain.capabilities, indent=2, sort_keys=True))


# Models added to the app later still show up, read-only, until they get an admin of their own.
for _model in apps.get_app_config("repos").get_models():
    if not admin.site.is_registered(_model):
        admin.site.register(_model, ReadOnlyAdmin)
