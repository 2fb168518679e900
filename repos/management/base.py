"""What every maintenance command shares: ``--json``, ``--no-progress``, ``--repo`` and tqdm on stderr.

Commands stay thin: parse arguments, call one service from ``repos.services``,
print its report (text for people, one JSON document with ``--json`` for
scripts) and raise CommandError with a sentence a person can act on.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from musehub_core.errors import RepoNotFound, StorageUnavailable
from repos.models import Repo
from repos.selectors import repo_by_name
from repos.services.maintenance import Progress, no_progress
from repos.storage.backend import failure_detail


def storage_failure(exc: StorageUnavailable) -> str:
    """Return the sentence a command exits with when object storage fails (CommandError: no traceback)."""
    return (
        f"object storage is unavailable: {failure_detail(exc)}; retry later, once it answers again "
        "(check that it is running and reachable at the MUSEHUB_S3_* settings)."
    )


class MaintenanceCommand(BaseCommand):
    """Base of the maintenance commands: subclasses implement :meth:`run` and set :attr:`takes_repo`."""

    takes_repo = False
    repo_help = "Restrict the command to repository OWNER/SLUG."
    # Django's system checks import every URL module and view (0.7 s of a 2 s repack here); a maintenance
    # command touches none of them. ``manage.py check``, ``migrate`` and the servers still run the checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        if self.takes_repo:
            parser.add_argument("--repo", metavar="OWNER/SLUG", help=self.repo_help)
        parser.add_argument("--json", action="store_true", help="Print one JSON document on stdout (for scripts).")
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="Show no progress bars (they are off anyway when stderr is not a terminal).",
        )
        parser.add_argument(
            "--skip-checks",
            action="store_true",
            help="Accepted for existing scripts: these commands never run Django's system checks.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.run(**options)
        except StorageUnavailable as exc:
            raise CommandError(storage_failure(exc)) from exc

    def run(self, **options: Any) -> None:
        raise NotImplementedError

    # --- helpers -----------------------------------------------------------------
    def progress(self, options: dict[str, Any]) -> Progress:
        """Return a tqdm factory writing to stderr, or a silent one with --no-progress or no terminal."""
        stream = getattr(self.stderr, "_out", sys.stderr)
        is_tty = getattr(stream, "isatty", None)
        if options.get("no_progress") or not (is_tty and is_tty()):
            return no_progress
        from tqdm import tqdm  # only for a terminal: importing it costs a command 70 ms of start-up

        return functools.partial(tqdm, file=stream, leave=False, dynamic_ncols=True)

    def repo(self, options: dict[str, Any]) -> Repo | None:
        """Return the repository --repo names, None without it; raise CommandError when there is no such repo."""
        value = options.get("repo")
        if not value:
            return None
        owner, sep, slug = value.partition("/")
        if not sep or not owner or not slug or "/" in slug:
            raise CommandError(f"--repo takes OWNER/SLUG (for example gabriel/songs), not {value!r}.")
        try:
            return repo_by_name(owner, slug)
        except RepoNotFound:
            raise CommandError(
                f"There is no repository {value}; check the owner and the slug (musehub_stats lists the biggest)."
            ) from None

    def emit_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))

    def positive(self, options: dict[str, Any], name: str, *, minimum: float = 1) -> Any:
        """Return option *name*, raising CommandError when it is set below *minimum*."""
        value = options.get(name)
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            raise CommandError(f"{flag} must be at least {minimum:g}, not {value:g}.")
        return value
