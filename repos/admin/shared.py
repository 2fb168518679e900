"""What every page of the admin shares: cell rendering, id search, the never-counting paginator, the
repository filters and columns, and the base classes of the read-only content lists.

The limits these read (``COUNT_CAP``, ``SMALL_TABLE``, ``REF_ROWS``) live on the package,
:mod:`repos.admin`, and are read there when a page renders, so a test or an operator sets them in one place.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterable

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, OuterRef, Q, Subquery, Value
from django.db.models.functions import Concat
from django.urls import NoReverseMatch, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from musehub_core.formatting import human_bytes, short_id
from repos import admin as limits
from repos import models
from repos.services.maintenance import estimated_rows

# --- rendering helpers ----------------------------------------------------------------------------


def short(content_id: str | None) -> str:
    """Return a content id shortened for tables (``1a2b3c4d5e6f``, :func:`musehub_core.formatting.short_id`)."""
    return short_id(content_id) or "—"


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


# --- finding rows without reading a table ---------------------------------------------------------


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
        counted = rows.order_by().values("pk")[: limits.COUNT_CAP + 1].count()  # no annotations: only the rows
        if counted <= limits.COUNT_CAP:
            return counted
        if connection.vendor == "postgresql":
            plan = json.loads(rows.order_by().values("pk").explain(format="json"))
            return max(counted, int(plan[0]["Plan"]["Plan Rows"]))
        return super().count  # SQLite (the embedded default, a small hub): count exactly


# --- filters and the repository column ------------------------------------------------------------


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
    rows = ref_model.objects.filter(**{field: content_id}).select_related("repo")[: limits.REF_ROWS]
    return format_html_join(", ", "{}", ((link("repo", r.repo_id, r.repo.full_name),) for r in rows)) or "—"


# --- the base classes -----------------------------------------------------------------------------


class ViewOnlyPermissions:
    """Refuse adding and changing rows, for a model admin or an inline (deleting is left to each admin).

    Put it before the Django base class: ``class BranchAdmin(ViewOnlyPermissions, admin.ModelAdmin)``. A
    model admin asks ``has_add_permission(request)``, an inline ``has_add_permission(request, obj)``;
    the optional *obj* answers both.
    """

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ViewOnlyPermissions, admin.ModelAdmin):
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
        return rows is not None and rows <= limits.SMALL_TABLE

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

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(ViewOnlyPermissions, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True
