"""Token-failure counts in the admin: see which addresses are refused, delete a row to lift its limit at once."""

from __future__ import annotations

from django.contrib import admin

from hubhttp.models import TokenFailures
from repos.admin.shared import ViewOnlyPermissions


@admin.register(TokenFailures)
class TokenFailuresAdmin(ViewOnlyPermissions, admin.ModelAdmin):
    """Rows are read and deleted (deleting one lifts its limit), never added or changed."""

    list_display = ("address", "failures", "window_start")
    ordering = ("-window_start",)
    search_fields = ("address",)
    show_full_result_count = False
