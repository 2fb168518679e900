"""API tokens: renamed, given an expiry or revoked here (one at a time or by an action), never created."""

from __future__ import annotations

from django.contrib import admin, messages

from repos import models
from repos.services.tokens import ACTIVE, revoke_tokens, token_state


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
