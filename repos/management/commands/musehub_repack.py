"""manage.py musehub_repack [--repo OWNER/SLUG] [--max-packs N] [--all]: combine small mpacks."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from musehub_core.formatting import human_bytes
from repos.management.base import MaintenanceCommand
from repos.services.repack import repack_hub, repack_repo


class Command(MaintenanceCommand):
    help = (
        "Combine a repository's small mpacks into one new pack (geometric rule: packs are left alone while each "
        "is at least twice the size of the next smaller one). The index switches in one transaction; the old "
        "packs stay until musehub_gc removes them."
    )
    takes_repo = True
    repo_help = "Repack only repository OWNER/SLUG (default: every repository)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--max-packs", type=int, default=None, metavar="N", help="Combine at most the N smallest packs per run."
        )
        parser.add_argument(
            "--all", action="store_true", dest="all_packs", help="Combine every pack, ignoring the geometric rule."
        )
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        max_packs = self.positive(options, "max_packs", minimum=2)
        repo = self.repo(options)
        kwargs = {"max_packs": max_packs, "all_packs": options["all_packs"], "progress": self.progress(options)}
        results = [repack_repo(repo, **kwargs)] if repo is not None else repack_hub(**kwargs)
        if options["json"]:
            self.emit_json({"repos": [r.as_dict() for r in results]})
        else:
            for result in results:
                if result.mpack_id is None:
                    self.stdout.write(f"{result.repo}: nothing to repack.")
                    continue
                before = human_bytes(sum(p.size_bytes for p in result.sources))
                self.stdout.write(
                    f"{result.repo}: combined {len(result.sources)} packs ({before}) into {result.mpack_id} "
                    f"({result.blobs} blobs, {human_bytes(result.size)}); the old packs stay until musehub_gc."
                )
                for skip in result.skipped:
                    self.stdout.write(
                        f"  skipped {skip['object_id'] or '(pack)'} in {skip['mpack_id']}: {skip['reason']}"
                    )
            if not results:
                self.stdout.write("No repository has packs to repack.")
        skipped = sum(len(r.skipped) for r in results)
        if skipped:
            raise CommandError(
                f"{skipped} blob(s) could not be copied and stay in their old packs; run musehub_fsck to see why."
            )
