"""manage.py musehub_migrate_legacy [--delete-legacy]: move per-object blobs into mpacks and index them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from repos.management.base import MaintenanceCommand
from repos.services.legacy import DEFAULT_BATCH_BLOBS, DEFAULT_BATCH_BYTES, migrate_legacy_blobs


class Command(MaintenanceCommand):
    help = (
        "Move blobs stored under legacy per-object keys (objects/...) into new mpacks, verifying each hash, and "
        "index every blob that has no index entry, so fetches can serve them."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--delete-legacy",
            action="store_true",
            help="Delete each per-object key once its blob is indexed in a pack and read back correctly.",
        )
        parser.add_argument(
            "--batch-blobs",
            type=int,
            default=DEFAULT_BATCH_BLOBS,
            metavar="N",
            help=f"Blobs per new pack at most (default {DEFAULT_BATCH_BLOBS}).",
        )
        parser.add_argument(
            "--batch-mb",
            type=int,
            default=DEFAULT_BATCH_BYTES // 1024**2,
            metavar="MIB",
            help=f"Stored MiB per new pack at most (default {DEFAULT_BATCH_BYTES // 1024**2}).",
        )
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        batch_blobs = self.positive(options, "batch_blobs")
        batch_mb = self.positive(options, "batch_mb")
        report = migrate_legacy_blobs(
            delete_legacy=options["delete_legacy"],
            batch_blobs=batch_blobs,
            batch_bytes=batch_mb * 1024**2,
            progress=self.progress(options),
        )
        if options["json"]:
            self.emit_json(report.as_dict())
        else:
            for problem in report.problems:
                self.stdout.write(self.style.ERROR(f"ERROR {problem['object_id']}: {problem['message']}"))
            self.stdout.write(
                f"Moved {report.moved} blob(s) into {len(report.mpacks)} new pack(s), indexed {report.indexed_in_place} "
                f"in the packs that already held them, relinked {report.relinked}, "
                f"deleted {report.deleted_keys} legacy key(s)."
            )
        if report.problems:
            raise CommandError(
                f"{len(report.problems)} object(s) have no readable copy anywhere; restore their bytes from backup "
                "(their ids are listed above), then run this again."
            )
