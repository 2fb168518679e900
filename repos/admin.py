"""The Django admin: inspect every model, and edit only what cannot break the storage rule.

Content rows (commits, snapshots, objects, the graph, the ref tables, mpacks
and their index) are written by the hub's services alone: here they can be
viewed, never added, changed or deleted, so content ids and storage URIs stay
what their content says. Repositories, collaborators, tokens, branches and
proposals can be edited where that is safe (names, descriptions, roles,
revocation, proposal titles); ids and heads stay read-only.

The inspection pages: a repository lists its branches, proposals and
collaborators; a snapshot shows its manifest as a table of paths linked to
objects; an object shows where its bytes live (mpack, offset, length, encoding,
cached or not) and previews text; an mpack lists its index entries and has a
"Verify integrity" action.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from musehub_core.errors import MuseHubError
from repos import models, selectors
from repos.manifests import BULKY_FIELDS, load_manifest
from repos.services.integrity import verify_mpack
from repos.services.proposals import close_proposal, reopen_proposal
from repos.services.tokens import ACTIVE, revoke_tokens, token_state
from repos.storage.backend import get_backend
from repos.storage.layout import MPACK_SCHEME
from repos.storage.reader import read_blob

MANIFEST_ROWS = 1_000
INDEX_ROWS = 500
REF_ROWS = 50
PREVIEW_BYTES = 4096
PREVIEW_READ_MAX = 1024 * 1024  # larger blobs are not read from storage just to preview them


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


def limited_note(shown: int, total: int, what: str) -> str:
    return f"Showing the first {shown} of {total} {what}." if total > shown else f"{total} {what}."


def repos_seeing(ref_model, field: str, content_id: str) -> SafeString:
    """Return the repositories whose *ref_model* rows name *content_id*, as links."""
    rows = ref_model.objects.filter(**{field: content_id}).select_related("repo")[:REF_ROWS]
    return format_html_join(", ", "{}", ((link("repo", r.repo_id, r.repo.full_name),) for r in rows)) or "—"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the hub's services write: viewable here, never added, changed or deleted."""

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
    fields = ["name", "head", "updated_at"]
    readonly_fields = fields

    @admin.display(description="head commit")
    def head(self, branch: models.Branch):
        return link("commit", branch.head_commit_id, short(branch.head_commit_id))


class ProposalInline(ReadOnlyInline):
    model = models.Proposal
    fields = ["number", "title", "state", "from_branch", "to_branch", "author", "created_at"]
    readonly_fields = fields


class CollaboratorInline(admin.TabularInline):
    model = models.Collaborator
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["user"]


@admin.register(models.Repo)
class RepoAdmin(admin.ModelAdmin):
    list_display = ["full_name", "name", "visibility", "domain", "default_branch", "created_at", "updated_at"]
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
    ]
    fields = [
        "repo_id", "owner", "owner_user", "owner_identity_id", "slug", "name", "description", "visibility",
        "domain", "default_branch", "created_at", "updated_at",
    ]  # fmt: skip
    inlines = [BranchInline, ProposalInline, CollaboratorInline]

    def has_add_permission(self, request) -> bool:
        return False  # repositories are created by a push or the API, which compute their ids

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting would cascade into the ref tables


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
        "merge_commit", "merge_strategy", "author", "merged_by", "created_at", "updated_at", "merged_at", "closed_at",
    ]  # fmt: skip
    readonly_fields = [f for f in fields if f not in ("title", "body")]
    actions = ["close", "reopen"]

    def has_add_permission(self, request) -> bool:
        return False  # proposals are opened through the API (create_proposal checks the branches)

    @admin.display(description="merge base")
    def base(self, proposal: models.Proposal):
        return link("commit", proposal.base_commit_id, short(proposal.base_commit_id))

    @admin.display(description="source head")
    def head(self, proposal: models.Proposal):
        return link("commit", proposal.head_commit_id, short(proposal.head_commit_id))

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
    list_display = ["upload_id", "repo", "user", "mpack_key", "size_bytes", "created_at", "expires_at"]
    search_fields = ["upload_id", "mpack_key", "repo__owner", "repo__slug", "user__username"]
    list_select_related = ["repo", "user"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return True  # an upload slot is not content; clearing a stale one is harmless


@admin.register(models.StagedObject)
class StagedObjectAdmin(ReadOnlyAdmin):
    """Blobs a muse CLI push uploaded by presigned URL, waiting for their push call to fold them into an mpack."""

    list_display = ["object_id", "repo", "created_at"]
    search_fields = ["object_id", "repo__repo_id", "repo__owner", "repo__slug"]
    list_select_related = ["repo"]


# --- history: commits, graph, snapshots -----------------------------------------------------------


@admin.register(models.Commit)
class CommitAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "summary", "author", "branch", "timestamp", "storage_uri"]
    list_filter = [("storage_uri", admin.EmptyFieldListFilter)]
    search_fields = ["commit_id", "message", "author", "branch"]
    date_hierarchy = "timestamp"
    fields = [
        "commit_id", "parents", "snapshot", "branch", "message", "author", "committed_at", "timestamp", "generation",
        "metadata", "storage_uri", "seen_by", "changes",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="commit id", ordering="commit_id")
    def short_id(self, commit: models.Commit) -> str:
        return short(commit.commit_id)

    @admin.display(description="message")
    def summary(self, commit: models.Commit) -> str:
        first = (commit.message or "").splitlines()[0] if commit.message else ""
        return first[:80] + ("…" if len(first) > 80 else "")

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
        return table(["change", "path"], shown, note=limited_note(len(shown), len(rows), "changed paths"))


@admin.register(models.CommitGraph)
class CommitGraphAdmin(ReadOnlyAdmin):
    list_display = ["commit", "generation", "parent_count", "snapshot"]
    search_fields = ["commit_id", "snapshot_id"]
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
    list_display = ["snapshot_id", "entry_count", "depth", "created_at", "storage_uri"]
    list_filter = [("storage_uri", admin.EmptyFieldListFilter), ("base_id", admin.EmptyFieldListFilter)]
    search_fields = ["snapshot_id"]
    fields = ["snapshot_id", "entry_count", "base_id", "depth", "created_at", "storage_uri", "seen_by", "manifest"]
    readonly_fields = fields

    def get_queryset(self, request):
        # Manifests can be large: load one only when a change page renders it.
        return super().get_queryset(request).defer(*BULKY_FIELDS)

    @admin.display(description="repositories that see it")
    def seen_by(self, snapshot: models.Snapshot):
        return repos_seeing(models.SnapshotRef, "snapshot_id", snapshot.snapshot_id)

    @admin.display(description="manifest")
    def manifest(self, snapshot: models.Snapshot):
        manifest = load_manifest(snapshot.snapshot_id)
        shown = sorted(manifest.items())[:MANIFEST_ROWS]
        sizes = dict(
            models.Object.objects.filter(object_id__in={oid for _, oid in shown}).values_list("object_id", "size_bytes")
        )
        rows = [(path, link("object", oid, short(oid)), sizes.get(oid, "— (no object row)")) for path, oid in shown]
        return table(["path", "object", "size"], rows, note=limited_note(len(shown), len(manifest), "paths"))


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
    list_display = ["object_id", "size_bytes", "path", "storage_uri", "cached", "created_at"]
    list_filter = [CachedFilter, StorageFilter]
    search_fields = ["object_id", "path", "storage_uri"]
    fields = [
        "object_id",
        "size_bytes",
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
        return super().get_queryset(request).annotate(is_cached=is_cached).defer("content_cache")

    @admin.display(boolean=True, description="cached", ordering="is_cached")
    def cached(self, obj: models.Object) -> bool:
        return bool(getattr(obj, "is_cached", obj.content_cache is not None))

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
        cached = "yes, in content_cache" if obj.content_cache is not None else "no"
        return table(
            ["mpack", "kind", "offset", "length", "encoding"],
            rows,
            note=f"{len(rows)} index entr{'y' if len(rows) == 1 else 'ies'}; cached: {cached}.",
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
        "mpack_id",
        "kind",
        "repo",
        "size_bytes",
        "commit_count",
        "snapshot_count",
        "blob_count",
        "created_at",
    ]
    list_filter = ["kind"]
    search_fields = ["mpack_id", "repo__repo_id", "repo__owner", "repo__slug"]
    list_select_related = ["repo"]
    fields = [
        "mpack_id", "kind", "repo", "size_bytes", "commit_count", "snapshot_count", "blob_count", "created_at",
        "in_storage", "index_entries",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["verify_integrity"]

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
        rows = [
            (
                link("object", e.entity_id, short(e.entity_id)),
                e.entity_type,
                "—" if e.offset is None else e.offset,
                "—" if e.length is None else e.length,
                e.encoding or "raw",
            )
            for e in shown
        ]
        return table(
            ["object", "type", "offset", "length", "encoding"],
            rows,
            note=limited_note(len(shown), total, "index entries"),
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
                self.message_user(
                    request,
                    f"Pack {mpack_id} is sound: its bytes match its key and all {check.index_rows} index entries "
                    f"decode to their objects ({check.blobs} blobs verified).",
                    messages.SUCCESS,
                )
            else:
                shown = "; ".join(check.problems[:5])
                more = f" (and {len(check.problems) - 5} more)" if len(check.problems) > 5 else ""
                self.message_user(
                    request,
                    f"Pack {mpack_id} FAILED its check with {len(check.problems)} problem(s): {shown}{more}",
                    messages.ERROR,
                )


@admin.register(models.MPackIndex)
class MPackIndexAdmin(ReadOnlyAdmin):
    list_display = ["entity", "pack", "entity_type", "offset", "length", "encoding", "created_at"]
    list_filter = ["encoding", "entity_type"]
    search_fields = ["entity_id", "mpack_id"]
    fields = ["entity", "pack", "entity_type", "offset", "length", "encoding", "created_at"]
    readonly_fields = fields

    @admin.display(description="object", ordering="entity_id")
    def entity(self, row: models.MPackIndex):
        return link("object", row.entity_id, short(row.entity_id))

    @admin.display(description="mpack", ordering="mpack_id")
    def pack(self, row: models.MPackIndex):
        return link("mpack", row.mpack_id, short(row.mpack_id))


# --- which repository sees what -------------------------------------------------------------------


class RefAdmin(ReadOnlyAdmin):
    """A ``*Ref`` table: one row per (repository, content id) the repository may see."""

    target = ""  # the content model's admin name: "commit", "snapshot" or "object"
    list_select_related = ["repo"]

    def get_list_display(self, request):
        return ["repo", "content"]

    def get_search_fields(self, request):
        return [f"{self.target}__{self.target}_id", "repo__repo_id", "repo__owner", "repo__slug"]

    def get_fields(self, request, obj=None):
        return ["repo", "content"]

    def get_readonly_fields(self, request, obj=None):
        return ["repo", "content"]

    @admin.display(description="content")
    def content(self, row):
        content_id = getattr(row, f"{self.target}_id")
        return link(self.target, content_id, content_id)


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
