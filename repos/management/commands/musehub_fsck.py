"""manage.py musehub_fsck [--repo OWNER/SLUG]: check stored data; exit non-zero on any error."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from repos.management.base import MaintenanceCommand
from repos.services.fsck import ERROR, fsck


class Command(MaintenanceCommand):
    help = (
        "Check that every mpack hashes to its id, every index entry matches its pack, cached bytes hash to their "
        "ids, every object a snapshot names is indexed or cached, every commit's parents and snapshot exist and "
        "every branch head exists. Prints each problem; exits non-zero when any error is found."
    )
    takes_repo = True
    repo_help = "Check only the rows repository OWNER/SLUG refers to (and the packs holding its blobs)."

    def run(self, **options: Any) -> None:
        report = fsck(repo=self.repo(options), progress=self.progress(options))
        if options["json"]:
            self.emit_json(report.as_dict())
        else:
            for problem in report.problems:
                style = self.style.ERROR if problem.severity == ERROR else self.style.WARNING
                self.stdout.write(
                    style(f"{problem.severity.upper()} {problem.code} {problem.subject}: {problem.message}")
                )
            checked = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in sorted(report.checked.items()))
            self.stdout.write(
                f"Checked {report.scope}: {checked or 'nothing'}. "
                f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)."
            )
        if not report.ok:
            raise CommandError(
                f"fsck found {len(report.errors)} error(s) in {report.scope}; each names the id it concerns. "
                "Restore the named packs or objects from backup, or run musehub_migrate_legacy/musehub_gc as advised."
            )
