"""Storage: objects (blobs), mpacks and their index, and what is on its way in (upload slots, staged blobs).

An object shows where its bytes live (mpack, offset, length, encoding, cached or not) and previews text; an
mpack lists its index entries beside their paths and has a "Verify integrity" action. All of it is content
the services write, viewable only; a stale upload slot may be deleted.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import BooleanField, ExpressionWrapper, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html

from musehub_core.errors import MuseHubError
from repos import admin as limits
from repos import models
from repos.admin.shared import (
    FixedChoicesFilter,
    ReadOnlyAdmin,
    RepoColumnFilter,
    RepoFilter,
    first_repo,
    limited_note,
    link,
    plural,
    repo_count,
    repo_filter,
    repos_seeing,
    seen_in,
    short,
    short_size,
    size,
    table,
)
from repos.services.integrity import verify_mpack
from repos.storage.backend import get_backend
from repos.storage.layout import MPACK_SCHEME
from repos.storage.reader import read_blob

# --- objects --------------------------------------------------------------------------------------


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
        if obj.content_cache is None and obj.size_bytes > limits.PREVIEW_READ_MAX:
            return f"Not previewed: {obj.size_bytes} bytes is more than the admin reads for a preview."
        try:
            raw = read_blob(obj.object_id)
        except MuseHubError as exc:
            return format_html("<strong>The bytes could not be read:</strong> {}", exc.message)
        head = raw[: limits.PREVIEW_BYTES]
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the 4 KiB boundary is still text.
            if len(raw) > limits.PREVIEW_BYTES and exc.start >= len(head) - 3:
                text = head[: exc.start].decode("utf-8")
            else:
                return f"Binary content ({len(raw)} bytes); no text preview."
        if "\x00" in text:
            return f"Binary content ({len(raw)} bytes); no text preview."
        more = (
            f"First {limits.PREVIEW_BYTES} of {len(raw)} bytes."
            if len(raw) > limits.PREVIEW_BYTES
            else f"{len(raw)} bytes."
        )
        return format_html(
            '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre><p>{}</p>', text, more
        )


# --- mpacks and their index -----------------------------------------------------------------------


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
        shown = list(entries[: limits.INDEX_ROWS])
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


class ObjectRepoFilter(RepoFilter):
    """Index rows of the objects one repository sees."""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        seen = models.ObjectRef.objects.filter(repo_id=self.value()).values("object_id")
        return queryset.filter(entity_id__in=seen)


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


# --- on the way in: upload slots and staged blobs -------------------------------------------------


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
