"""manage.py musehub_gc [--dry-run] [--grace HOURS]: delete what no repository needs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from musehub_core.formatting import human_bytes
from repos.management.base import MaintenanceCommand
from repos.services.gc import DEFAULT_GRACE_HOURS, collect_garbage

LABELS = (
    ("commits", "commit(s)"),
    ("graph_rows", "commit-graph row(s)"),
    ("snapshots", "snapshot(s)"),
    ("objects", "object(s)"),
    ("index_rows", "index row(s)"),
    ("mpacks", "mpack(s)"),
    ("orphan_mpacks", "orphan mpack(s)"),
    ("uploads", "stale upload(s)"),
    ("staged_objects", "staged object(s)"),
    ("unfinished_writes", "unfinished write(s)"),
)


class Command(MaintenanceCommand):
    help = (
        "Delete content rows no repository refers to, index rows of deleted objects, mpacks no index entry needs "
        "(fetch packs are caches and always go), packs in storage with no row, stale uploads, and the temporary "
        "files of writes a killed process left (filesystem storage). Nothing younger than the grace period is touched."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report what would be deleted; change nothing.")
        parser.add_argument(
            "--grace",
            type=float,
            default=DEFAULT_GRACE_HOURS,
            metavar="HOURS",
            help=f"Leave anything younger than this many hours alone (default {DEFAULT_GRACE_HOURS:g}).",
        )
        parser.add_argument(
            "--full-mark",
            action="store_true",
            help="Decode every snapshot's manifest before deleting an object (slow on a big hub). Only needed for "
            "data written before every snapshot's objects had refs, or when musehub_fsck reports object-ref-missing.",
        )
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        hours = self.positive(options, "grace", minimum=0)
        report = collect_garbage(
            grace=dt.timedelta(hours=hours),
            dry_run=options["dry_run"],
            progress=self.progress(options),
            full_mark=options["full_mark"],
        )
        if options["json"]:
            self.emit_json(report.as_dict())
            return
        for pack in report.mpacks:
            self.stdout.write(f"mpack {pack['mpack_id']} ({pack['kind']}, {human_bytes(pack['size_bytes'])})")
        for mpack_id in report.orphan_mpacks:
            self.stdout.write(f"mpack {mpack_id} (in storage with no row)")
        verb = "Would delete" if report.dry_run else "Deleted"
        counts = ", ".join(f"{report.deleted.get(key, 0)} {label}" for key, label in LABELS)
        self.stdout.write(
            f"{verb} {counts}; {human_bytes(report.freed_bytes)} of packs. "
            f"Grace period {report.grace_hours:g} hour(s): nothing written after {report.cutoff} was touched."
        )
