"""Token-failure counts in the admin: see which addresses are refused, delete a row to lift its limit at once."""

from __future__ import annotations

from django.contrib import admin

from hubhttp.models import TokenFailures


@admin.register(TokenFailures)
class TokenFailuresAdmin(admin.ModelAdmin):
    list_display = ("address", "failures", "window_start")
    ordering = ("-window_start",)
    search_fields = ("address",)
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
