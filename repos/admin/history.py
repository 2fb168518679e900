"""History: branches, commits, the commit graph and snapshots.

Branches move only by push or merge (a branch can be deleted here, never edited); commits, graph rows and
snapshots are content, viewable only. A commit shows its parents, snapshot, generation, the repositories
that see it and its changes; a snapshot shows its manifest a page or a folder at a time.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from repos import admin as limits
from repos import models, readmodel
from repos.admin.shared import (
    ReadOnlyAdmin,
    ViewOnlyPermissions,
    first_repo,
    limited_note,
    link,
    plural,
    repo_count,
    repo_filter,
    repos_seeing,
    seen_in,
    short,
    size,
    table,
    trigram_indexed,
)
from repos.manifests import BULKY_FIELDS, load_manifest


@admin.register(models.Branch)
class BranchAdmin(ViewOnlyPermissions, admin.ModelAdmin):
    """Branches move only by push or merge (their heads are read-only); a branch may be deleted."""

    list_display = ["name", "repo", "head", "updated_at"]
    search_fields = ["branch_id", "name", "head_commit_id", "repo__owner", "repo__slug"]
    list_filter = ["repo__visibility"]
    list_select_related = ["repo"]
    fields = ["branch_id", "repo", "name", "head", "created_at", "updated_at"]
    readonly_fields = fields

    @admin.display(description="head commit", ordering="head_commit_id")
    def head(self, branch: models.Branch):
        return link("commit", branch.head_commit_id, short(branch.head_commit_id))


@admin.register(models.Commit)
class CommitAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "summary", "author", "repository", "timestamp"]
    list_filter = [repo_filter(models.CommitRef, "commit_id"), ("storage_uri", admin.EmptyFieldListFilter)]
    ordering = ["-timestamp"]
    id_fields = ("commit_id",)
    text_fields = ("message", "author")
    fields = [
        "commit_id", "parents", "snapshot", "branch", "message", "author", "committed_at", "timestamp", "generation",
        "metadata", "storage_uri", "seen_by", "changes",
    ]  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                repo_name=first_repo(models.CommitRef, "commit_id"),
                repo_total=repo_count(models.CommitRef, "commit_id"),
            )
        )

    def text_search_allowed(self, request) -> bool:
        return trigram_indexed() or super().text_search_allowed(request)

    @admin.display(description="commit id", ordering="commit_id")
    def short_id(self, commit: models.Commit) -> str:
        return short(commit.commit_id)

    @admin.display(description="message")
    def summary(self, commit: models.Commit) -> str:
        first = (commit.message or "").splitlines()[0] if commit.message else ""
        return first[:80] + ("…" if len(first) > 80 else "")

    @admin.display(description="repository")
    def repository(self, commit: models.Commit) -> str:
        return seen_in(commit)

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
        diff = readmodel.commit_diff(commit).changes
        rows = [(kind, path) for kind, paths in diff.as_dict().items() for path in paths]
        shown = rows[: limits.MANIFEST_ROWS]
        return table(["change", "path"], shown, note=limited_note(len(shown), len(rows), "changed path"))


@admin.register(models.CommitGraph)
class CommitGraphAdmin(ReadOnlyAdmin):
    list_display = ["commit", "generation", "parent_count", "snapshot"]
    ordering = ["-generation"]
    id_fields = ("commit_id",)
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
    change_form_template = "admin/repos/snapshot/change_form.html"
    list_display = ["short_id", "entry_count", "depth", "repository", "created_at"]
    list_filter = [
        repo_filter(models.SnapshotRef, "snapshot_id"),
        ("base_id", admin.EmptyFieldListFilter),
        ("storage_uri", admin.EmptyFieldListFilter),
    ]
    ordering = ["-created_at"]
    id_fields = ("snapshot_id",)
    fields = ["snapshot_id", "entry_count", "base_id", "depth", "created_at", "storage_uri", "seen_by"]
    readonly_fields = fields

    def get_queryset(self, request):
        # Manifests can be large: load one only when a change page renders it.
        return (
            super()
            .get_queryset(request)
            .defer(*BULKY_FIELDS)
            .annotate(
                repo_name=first_repo(models.SnapshotRef, "snapshot_id"),
                repo_total=repo_count(models.SnapshotRef, "snapshot_id"),
            )
        )

    @admin.display(description="snapshot id", ordering="snapshot_id")
    def short_id(self, snapshot: models.Snapshot) -> str:
        return short(snapshot.snapshot_id)

    @admin.display(description="repository")
    def repository(self, snapshot: models.Snapshot) -> str:
        return seen_in(snapshot)

    @admin.display(description="repositories that see it")
    def seen_by(self, snapshot: models.Snapshot):
        return repos_seeing(models.SnapshotRef, "snapshot_id", snapshot.snapshot_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        snapshot = self.get_object(request, unquote(object_id))
        if snapshot is not None:
            extra_context["manifest"] = manifest_page(
                snapshot.snapshot_id, folder=request.GET.get("folder", ""), page=request.GET.get("page", "1")
            )
        return super().change_view(request, object_id, form_url, extra_context)


def manifest_page(snapshot_id: str, *, folder: str, page: str) -> SafeString:
    """Return one page of a manifest's paths (under *folder* when given), with links to its sub-folders and pages."""
    manifest = load_manifest(snapshot_id)
    folder = folder.strip("/")
    prefix = folder + "/" if folder else ""
    paths = sorted(p for p in manifest if p.startswith(prefix))
    subfolders: dict[str, int] = {}
    for path in paths:
        rest = path[len(prefix) :]
        if "/" in rest:
            name = rest.split("/", 1)[0]
            subfolders[name] = subfolders.get(name, 0) + 1
    pages = max(1, -(-len(paths) // limits.MANIFEST_ROWS))
    number = min(max(int(page) if page.isdigit() else 1, 1), pages)
    shown = paths[(number - 1) * limits.MANIFEST_ROWS : number * limits.MANIFEST_ROWS]
    sizes = dict(
        models.Object.objects.filter(object_id__in={manifest[p] for p in shown}).values_list("object_id", "size_bytes")
    )

    def url(**params: object) -> str:
        query = {"folder": folder, "page": number, **params}
        return "?" + urlencode({k: v for k, v in query.items() if v not in ("", None)})

    crumbs = [format_html('<a href="{}">(root)</a>', url(folder="", page=1))]
    parts = folder.split("/") if folder else []
    for depth, part in enumerate(parts):
        crumbs.append(format_html('<a href="{}">{}</a>', url(folder="/".join(parts[: depth + 1]), page=1), part))
    nav = format_html("<p>Folder: {}</p>", format_html_join(" / ", "{}", ((c,) for c in crumbs)))
    if subfolders:
        links = (
            (url(folder=prefix + name, page=1), name, plural(count, "path"))
            for name, count in sorted(subfolders.items())
        )
        nav += format_html("<p>Sub-folders: {}</p>", format_html_join(", ", '<a href="{}">{}/</a> ({})', links))
    rows = [
        (path, link("object", manifest[path], short(manifest[path])), size(sizes.get(manifest[path]))) for path in shown
    ]
    where = f" under {folder}/" if folder else ""
    if len(paths) > limits.MANIFEST_ROWS:
        start = (number - 1) * limits.MANIFEST_ROWS
        note = f"Paths {start + 1:,}-{start + len(shown):,} of {len(paths):,}{where} (page {number} of {pages})."
    else:
        note = limited_note(len(shown), len(paths), "path") if not where else f"{plural(len(paths), 'path')}{where}."
    pager = ""
    if pages > 1:
        steps = []
        if number > 1:
            steps.append(format_html('<a href="{}">previous</a>', url(page=number - 1)))
        if number < pages:
            steps.append(format_html('<a href="{}">next</a>', url(page=number + 1)))
        pager = format_html("<p>{}</p>", format_html_join(" · ", "{}", ((step,) for step in steps)))
    return nav + table(["path", "object", "size"], rows, note=note) + pager
