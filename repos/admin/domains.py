"""Published Muse domains: the display name and description are editable, nothing else."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from repos import models


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
