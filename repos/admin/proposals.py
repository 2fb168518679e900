"""Proposals: titles and bodies are editable; closing and reopening go through the proposal services
(two actions); opening and merging are left to the API, whose services check the branches."""

from __future__ import annotations

from django.contrib import admin, messages

from musehub_core.errors import MuseHubError
from repos import models
from repos.admin.shared import link, short
from repos.services.proposals import close_proposal, reopen_proposal


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
