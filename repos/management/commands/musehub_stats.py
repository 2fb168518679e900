"""manage.py musehub_stats [--repo OWNER/SLUG] [--top N] [--exact]: what the hub holds."""

from __future__ import annotations

from typing import Any

from musehub_core.formatting import human_bytes
from repos.management.base import MaintenanceCommand
from repos.services.maintenance import hub_stats


class Command(MaintenanceCommand):
    help = (
        "Print counts and sizes: objects, bytes, mpacks by kind, cached blobs, and the biggest repositories. "
        "On a big PostgreSQL hub the hub-wide counts of big tables are estimates (marked ~); --exact counts them."
    )
    takes_repo = True
    repo_help = "Show what repository OWNER/SLUG sees instead of the whole hub (always exact)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--top", type=int, default=10, metavar="N", help="How many of the biggest repos to list.")
        parser.add_argument(
            "--exact",
            action="store_true",
            help="Count every row of every table instead of estimating the big ones (scans whole tables: slow on "
            "a big hub).",
        )
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        top = self.positive(options, "top")
        stats = hub_stats(repo=self.repo(options), top=top, exact=options["exact"])
        if options["json"]:
            self.emit_json(stats.as_dict())
            return

        def n(name: str) -> str:
            value = getattr(stats, name)
            return f"~{value:,}" if name in stats.approximate else f"{value:,}"

        def b(name: str) -> str:
            value = human_bytes(getattr(stats, name))
            return f"~{value}" if name in stats.approximate else value

        write = self.stdout.write
        write(f"Scope: {stats.scope}")
        write(f"Repositories: {stats.repos:,}")
        write(f"Commits: {n('commits')}   Snapshots: {n('snapshots')}")
        write(f"Objects: {n('objects')} ({b('object_bytes')})")
        write(f"Cached objects: {n('cached_objects')} ({b('cached_bytes')})")
        write(f"Objects with no index entry: {n('unindexed_objects')}   Index rows: {n('index_rows')}")
        write(f"Mpacks: {stats.mpacks:,} ({human_bytes(stats.mpack_bytes)})")
        for kind, row in stats.mpacks_by_kind.items():
            write(f"  {kind}: {row['count']:,} ({human_bytes(row['bytes'])})")
        if stats.biggest_repos:
            write("Biggest repositories (by the bytes of the packs pushed to them):")
            for repo in stats.biggest_repos:
                write(
                    f"  {repo.repo}: {repo.objects:,} objects ({human_bytes(repo.object_bytes)}), "
                    f"{repo.commits:,} commits, {repo.branches} branches, {repo.mpacks} packs "
                    f"({human_bytes(repo.mpack_bytes)})"
                )
        if stats.approximate:
            write(
                "~ estimated, not counted (a hub this big would scan whole tables): row counts are PostgreSQL's "
                "planner statistics, object figures are scaled from a sample of the objects table's pages. "
                "Run with --exact to count every row."
            )
