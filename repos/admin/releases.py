"""Releases and tags, as ``muse release push`` and tag pushes made them: a release's title and notes are
editable, a tag can be deleted but not edited, and neither is added here."""

from __future__ import annotations

from django.contrib import admin

from repos import models
from repos.admin.shared import ViewOnlyPermissions, link, short


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
class TagAdmin(ViewOnlyPermissions, admin.ModelAdmin):
    """Tags on commits, as pushed; they can be deleted, not edited."""

    list_display = ["name", "repo", "commit", "created_at", "pushed_at"]
    search_fields = ["name", "commit_id", "repo__repo_id", "repo__owner", "repo__slug"]
    list_select_related = ["repo"]
    fields = ["repo", "name", "commit", "created_at", "pushed_at"]
    readonly_fields = fields

    @admin.display(description="commit", ordering="commit_id")
    def commit(self, tag: models.Tag):
        return link("commit", tag.commit_id, short(tag.commit_id))
