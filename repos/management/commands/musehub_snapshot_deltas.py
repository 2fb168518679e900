"""manage.py musehub_snapshot_deltas [--dry-run]: store existing snapshots as deltas (run once after upgrading)."""

from __future__ import annotations

from typing import Any

from musehub_core.formatting import human_bytes
from repos.management.base import MaintenanceCommand
from repos.services.snapshot_deltas import convert_snapshots


class Command(MaintenanceCommand):
    help = (
        "Re-store every snapshot as a delta against its first parent's snapshot where that is smaller, with a full "
        "checkpoint every MUSEHUB_SNAPSHOT_CHAIN_MAX deltas. Snapshot ids and manifests do not change. Safe to stop "
        "and run again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; write nothing.")
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        report = convert_snapshots(dry_run=options["dry_run"], progress=self.progress(options))
        if options["json"]:
            self.emit_json(report.as_dict())
            return
        verb = "Would rewrite" if options["dry_run"] else "Rewrote"
        self.stdout.write(
            f"{verb} {report.rewritten} of {report.snapshots} snapshots ({report.deltas} stored as deltas): "
            f"{human_bytes(report.bytes_before)} -> {human_bytes(report.bytes_after)}."
        )
