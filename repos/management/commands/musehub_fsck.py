"""manage.py musehub_fsck [--repo OWNER/SLUG | --since WHEN | --batch N [--after OWNER/SLUG] [--state FILE]]."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from repos.management.base import MaintenanceCommand
from repos.services.fsck import ERROR, FsckReport, fsck, fsck_batch

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([hd])$")


def parse_since(value: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """Return the time *value* names: an ISO date-time (UTC unless it says otherwise) or a duration ago (``25h``, ``2d``)."""
    now = now or dt.datetime.now(dt.UTC)
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return now - (dt.timedelta(hours=amount) if unit == "h" else dt.timedelta(days=amount))
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--since takes a date-time (2026-11-28T02:00) or a duration ago (25h, 2d), not {value!r}."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class Command(MaintenanceCommand):
    help = (
        "Check that every mpack hashes to its id, every index entry matches its pack, cached bytes hash to their "
        "ids, every object a snapshot names is indexed or cached (and, per repository, referred to), every commit's "
        "parents and snapshot exist and every branch head exists. Prints each problem; exits non-zero when any error "
        "is found. A whole-hub check reads every pack: on a big hub spread it with --since and --batch (the nightly "
        "job: musehub_fsck --batch 100 --state /var/lib/musehub/fsck.json)."
    )
    takes_repo = True
    repo_help = "Check only the rows repository OWNER/SLUG refers to (and the packs holding its blobs)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--since",
            metavar="WHEN",
            help="Check only what was written since WHEN (a date-time, or a duration ago such as 25h or 2d): packs, "
            "objects and snapshots written since, the commits of those snapshots, and branches moved since.",
        )
        parser.add_argument(
            "--batch",
            type=int,
            metavar="N",
            help="Check the N repositories after --after (or after the cursor in --state), in name order.",
        )
        parser.add_argument("--after", metavar="OWNER/SLUG", help="With --batch: start after this repository.")
        parser.add_argument(
            "--state",
            metavar="FILE",
            help="With --batch: read the cursor and the previous run's start from FILE, check the next batch and "
            "everything written since the previous run, then save the new cursor (it wraps around at the end).",
        )
        super().add_arguments(parser)

    def run(self, **options: Any) -> None:
        repo = self.repo(options)
        since = parse_since(options["since"]) if options.get("since") else None
        batch = self.positive(options, "batch")
        if batch is None and (options.get("after") or options.get("state")):
            raise CommandError("--after and --state go with --batch N (how many repositories to check this run).")
        if batch is not None and repo is not None:
            raise CommandError("--batch checks repositories in turn; leave out --repo (or drop --batch).")
        if repo is not None and since is not None:
            raise CommandError("--since checks the whole hub's new rows; leave out --repo (or drop --since).")
        extra: dict[str, Any] = {}
        if batch is not None:
            report, extra = self._batch(batch, since, options)
        else:
            report = fsck(repo=repo, since=since, progress=self.progress(options))
        self._print(report, extra, options)

    def _batch(self, limit: int, since: dt.datetime | None, options: dict[str, Any]) -> tuple[FsckReport, dict]:
        state_path = Path(options["state"]) if options.get("state") else None
        after = options.get("after")
        started = dt.datetime.now(dt.UTC)
        if state_path is not None and state_path.exists():
            try:
                state = json.loads(state_path.read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"Cannot read the fsck state {state_path}: {exc}; fix or delete it.") from None
            after = after or state.get("after")
            if since is None and state.get("started_at"):
                since = dt.datetime.fromisoformat(state["started_at"])
        result = fsck_batch(after=after, limit=limit, since=since, progress=self.progress(options))
        if state_path is not None:
            state_path.write_text(json.dumps({"after": result.next_after, "started_at": started.isoformat()}))
        extra = {
            "repositories": result.repos,
            "next_after": result.next_after,
            "since": since,
            "wrapped": result.wrapped,
        }
        return result.report, extra

    def _print(self, report: FsckReport, extra: dict[str, Any], options: dict[str, Any]) -> None:
        if options["json"]:
            self.emit_json({**report.as_dict(), **extra})
        else:
            for problem in report.problems:
                style = self.style.ERROR if problem.severity == ERROR else self.style.WARNING
                self.stdout.write(
                    style(f"{problem.severity.upper()} {problem.code} {problem.subject}: {problem.message}")
                )
            checked = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in sorted(report.checked.items()))
            scope = report.scope
            if "repositories" in extra:
                names = ", ".join(extra["repositories"]) or "none"
                scope = f"repositories {names}" + (
                    f" and what was written since {extra['since']}" if extra["since"] else ""
                )
            self.stdout.write(
                f"Checked {scope}: {checked or 'nothing'}. {len(report.errors)} error(s), {len(report.warnings)} warning(s)."
            )
            if "repositories" in extra:
                nxt = extra["next_after"]
                self.stdout.write(
                    f"Next batch starts after {nxt}."
                    if nxt
                    else "This batch reached the last repository; the next starts from the first."
                )
        if not report.ok:
            raise CommandError(
                f"fsck found {len(report.errors)} error(s) in {report.scope}; each names the id it concerns. "
                "Restore the named packs or objects from backup, or run musehub_migrate_legacy/musehub_gc as advised."
            )
