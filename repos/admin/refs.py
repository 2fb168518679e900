"""Which repository sees what: the ``*Ref`` tables (one row per repository and commit, snapshot or
object it may see), viewable only, searchable by content id or by repository name."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from repos import models
from repos.admin.shared import ReadOnlyAdmin, RepoColumnFilter, id_match, link, short


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
