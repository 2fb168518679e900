"""manage.py musehub_stats [--repo OWNER/SLUG] [--top N]: what the hub holds."""

from __future__ import annotations

from typing import Any

from repos.management.base import MaintenanceCommand, human_bytes
from repos.services.maintenance import hub_stats


class Command(MaintenanceCommand):
    help = "Print counts and sizes: objects, bytes, mpacks by kind, cached blobs, and the biggest repositories."
    takes_repo = True
    repo_help = "Show what repository OWNER/SLUG sees instead of the whole hub."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--top", type=int, default=10, metavar="N", help="How many of the biggest repos to list.")
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        top = self.positive(options, "top")
        stats = hub_stats(repo=self.repo(options), top=top)
        if options["json"]:
            self.emit_json(stats.as_dict())
            return
        write = self.stdout.write
        write(f"Scope: {stats.scope}")
        write(f"Repositories: {stats.repos}")
        write(f"Commits: {stats.commits}   Snapshots: {stats.snapshots}")
        write(f"Objects: {stats.objects} ({human_bytes(stats.object_bytes)})")
        write(f"Cached objects: {stats.cached_objects} ({human_bytes(stats.cached_bytes)})")
        write(f"Objects with no index entry: {stats.unindexed_objects}   Index rows: {stats.index_rows}")
        write(f"Mpacks: {stats.mpacks} ({human_bytes(stats.mpack_bytes)})")
        for kind, row in stats.mpacks_by_kind.items():
            write(f"  {kind}: {row['count']} ({human_bytes(row['bytes'])})")
        if stats.biggest_repos:
            write("Biggest repositories (by blob bytes):")
            for repo in stats.biggest_repos:
                write(
                    f"  {repo.repo}: {repo.objects} objects ({human_bytes(repo.object_bytes)}), {repo.commits} commits, "
                    f"{repo.branches} branches, {repo.mpacks} packs ({human_bytes(repo.mpack_bytes)})"
                )
