"""The MuseHub client's command line: push a folder, clone, fetch and pull over the mpack protocol.

Usage (``musehub`` once installed; ``python -m musehub_client`` runs the same)::

    musehub push [DIR] [URL] [--branch B | --onto B] [--force] [--message M] [--author A]
                 [--private | --public] [--token T]
    musehub clone URL DIR [--branch B] [--token T]
    musehub fetch [DIR] [--token T]
    musehub pull [DIR] [--token T]
    musehub merge BRANCH [DIR] [--message M] [--author A] [--token T]
    musehub merge --abort [DIR]
    musehub branch-delete URL NAME [--token T]

``URL`` is a repository URL ``{hub}/{owner}/{slug}``, e.g.
``http://127.0.0.1:8000/alice/demo``. The token comes from ``--token`` or the
``MUSEHUB_TOKEN`` environment variable and travels as ``Authorization: Bearer``
to the hub only (never to storage URLs). ``-q`` silences progress and notes on
stderr; the one-line result summary still goes to stdout.

What each command does (docs/wire.md §3; the work is in :mod:`musehub_client.operations`):

- **push** scans DIR (default ``.``) into a manifest, makes one commit on top of
  the branch head, asks ``filter-objects`` which blobs the hub lacks, streams
  those blobs plus the commit and snapshot into one mpack in a temporary file,
  uploads it to the URL ``mpack/upload`` hands out and calls ``mpack/push``. On
  success DIR's state records the new head (DIR then tracks URL and branch, and
  URL may be left out of later pushes, as for fetch and pull). The
  parent is DIR's recorded head when DIR tracks this URL and branch, or when the
  branch is new on the hub (it forks from DIR's head); otherwise the remote head
  from ``/refs`` (none for a new branch). An unchanged tree whose head the hub
  already has prints "nothing to push". When the hub lists the
  ``snapshot-delta`` capability the snapshot travels as a delta against the
  parent's (docs/wire.md §2.1). Only regular files are stored: symlinks (Muse
  snapshots exclude them), pipes, sockets, devices and unreadable files are
  counted and named in a warning (shown even with ``-q``) and listed in
  ``DIR/.musehub/skipped.txt``. A folder tracking another branch is refused
  when the target branch exists, unless ``--onto`` names it. A first push
  creates the repository under the token's user (public; ``--private`` creates
  it private first). Commits are authored as ``--author``, else
  ``$MUSEHUB_AUTHOR``, else the token's user.
- **clone** downloads the pack for the branch head, verifies every blob, commit
  and snapshot id, writes the head snapshot into DIR and records the state. The
  pack is kept in ``DIR/.musehub/packs/`` (it holds the history's blobs).
- **fetch** downloads only what the state does not hold into
  ``DIR/.musehub/packs/`` and records ``fetched_head``; the working tree is not
  touched.
- **pull** fetches, then moves the working tree to the fetched head: changed and
  new files are written, removed files are deleted, unchanged ones are left
  alone. It refuses (exit 4) before writing anything if a file it would change
  or delete has local modifications, or an untracked file is in the way.
- **merge** fetches BRANCH and merges it into DIR by the hub's rules; a clean
  merge makes the two-parent commit locally, conflicts are written marked
  (exit 4) and the next push, once they are resolved, sends the merge commit;
  ``--abort`` undoes a pending merge (:mod:`musehub_client.merging`).

- **branch-delete** deletes branch NAME of the repository URL through the REST
  API (``DELETE /api/v1/repos/{owner}/{slug}/branches/{name}``; write role).
  The hub refuses the default branch and a branch an open proposal uses (exit
  4); the branch's commits stay on the hub.

State: ``DIR/.musehub/state.json`` =
``{"url", "branch", "head", "manifest_file", "snapshot_id", "commits": [commit ids], "fetched_head"?}``;
the head's manifest ({path: object_id}) is in ``manifest_file`` (msgpack) beside it.

Exit codes: 0 success; 1 any other error; 2 usage error; 3 authentication or
permission refused (HTTP 401/403); 4 conflict (HTTP 409 non-fast-forward, or
pull refusing to overwrite local changes); 5 not found (HTTP 404); 6 server or
network error (HTTP 5xx, connection failure, downloaded data failing its
integrity checks); 130 interrupted. Errors are one line ``error: <detail>`` on
stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import IO

from musehub_client import merging, operations
from musehub_client.feedback import plural, short
from musehub_client.http import (
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    ClientError,
)
from musehub_core.errors import MalformedPack
from musehub_core.formatting import human_bytes

PROG = "musehub"
PROGRESS_MIN_BYTES = 1024 * 1024
PROGRESS_INTERVAL = 0.25
PROGRESS_LOG_INTERVAL = 10.0  # seconds between progress lines when stderr is not a terminal

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  any other error
  2  usage error
  3  authentication or permission refused (HTTP 401/403)
  4  conflict: non-fast-forward push (HTTP 409), or pull refusing to overwrite local changes
  5  not found (HTTP 404: repository, branch, commit or uploaded pack)
  6  server or network error (HTTP 5xx, connection failure, downloaded data failing its checks)
  130 interrupted

The token is read from --token or the MUSEHUB_TOKEN environment variable.
"""


# --- output -----------------------------------------------------------------------------


class Output:
    """Where the client talks: results to stdout, notes and progress to stderr (unless quiet)."""

    def __init__(self, quiet: bool = False, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, message: str) -> None:
        print(message, file=self.stdout, flush=True)

    def note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stderr, flush=True)

    def warn(self, message: str) -> None:
        """Print a warning on stderr, even when quiet (something the user must know happened)."""
        print(message, file=self.stderr, flush=True)

    def progress(self, label: str, total: int | None) -> Progress:
        return Progress(label, total, self.stderr, enabled=not self.quiet)


class Progress:
    """A percentage/bytes line on stderr.

    On a terminal the line is redrawn in place (carriage return) at most
    1/PROGRESS_INTERVAL times a second; anywhere else (a log, a pipe) it is a
    plain line at most every PROGRESS_LOG_INTERVAL seconds, never a carriage
    return. Shown only for transfers larger than 1 MiB (or of unknown size once
    they pass 1 MiB).
    """

    def __init__(self, label: str, total: int | None, stream: IO[str], *, enabled: bool = True) -> None:
        self.label = label
        self.total = total if total and total > 0 else None
        self.stream = stream
        self.enabled = enabled and (self.total is None or self.total > PROGRESS_MIN_BYTES)
        self.live = _is_terminal(stream)
        self.done = 0
        self._last = time.monotonic() if not self.live else 0.0
        self._drawn = False

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled or (self.total is None and self.done <= PROGRESS_MIN_BYTES):
            return
        now = time.monotonic()
        if now - self._last >= (PROGRESS_INTERVAL if self.live else PROGRESS_LOG_INTERVAL):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            pct = min(100, self.done * 100 // self.total)
            text = f"{self.label}: {pct:3d}% ({human_bytes(self.done)} / {human_bytes(self.total)})"
        else:
            text = f"{self.label}: {human_bytes(self.done)}"
        self.stream.write(f"\r{text:<60}" if self.live else text + "\n")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Draw the final state and end the line (only if anything was drawn)."""
        if self._drawn:
            self._draw()
            if self.live:
                self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --- commands ---------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> str | None:
    return getattr(args, "token", None) or os.environ.get("MUSEHUB_TOKEN") or None


def _up_to_date(branch: str, head: str | None) -> str:
    if head is None:
        return f"already up to date: {branch} does not exist yet (empty repository)"
    return f"already up to date: {branch} is at {short(head)}"


def cmd_push(args: argparse.Namespace, out: Output) -> int:
    """Snapshot DIR, commit it on top of the branch head and push it (see the module docstring)."""
    directory, url = _push_place(args.dir, args.url)
    result = operations.push(
        directory,
        url,
        token=_token(args),
        branch=args.branch,
        onto=args.onto,
        force=bool(args.force),
        message=args.message,
        author=args.author,
        visibility=args.visibility,
        out=out,
    )
    if not result.pushed:
        out.result(f"nothing to push: {result.branch} is at {short(result.parent)} and the tree is unchanged")
        return EXIT_OK
    if result.created:
        hint = "" if result.created == "private" else " (pass --private on a first push for a private one)"
        out.note(f"created the {result.created} repository {result.url}{hint}")
    out.result(
        f"pushed 1 commit, {plural(result.blobs, 'blob')}, {human_bytes(result.uploaded)} uploaded "
        f"(pack {human_bytes(result.pack_bytes)}) to {result.url} {result.branch} at {short(result.head)} "
        f"in {result.seconds:.1f}s"
    )
    return EXIT_OK


def _push_place(first: str | None, second: str | None) -> tuple[str, str | None]:
    """Return (DIR, URL) of ``push [DIR] [URL]``: a lone argument that looks like a URL is the URL (DIR is .)."""
    if first is not None and second is None and first.startswith(("http://", "https://")):
        return ".", first
    return first or ".", second


def cmd_clone(args: argparse.Namespace, out: Output) -> int:
    """Download the branch head into a new (or empty) DIR and record the state."""
    result = operations.clone(args.url, args.dir, token=_token(args), branch=args.branch, out=out)
    if result.head is None:
        out.result(f"cloned an empty repository {result.url} into {result.root}")
        return EXIT_OK
    out.result(
        f"cloned {result.url} {result.branch} at {short(result.head)} into {result.root}: "
        f"{plural(result.files, 'file')}, {plural(result.commits, 'commit')}, {human_bytes(result.pack_bytes)} "
        f"in {result.seconds:.1f}s"
    )
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace, out: Output) -> int:
    """Fetch new history into ``.musehub/packs`` without touching the working tree."""
    result = operations.fetch(args.dir, token=_token(args), out=out)
    if result.remote_head == result.head:
        out.result(_up_to_date(result.branch, result.head))
    elif not result.commits and not result.blobs:
        out.result(f"{result.branch} is at {short(result.remote_head)} (already fetched); run pull to update the tree")
    else:
        out.result(
            f"fetched {plural(result.commits, 'commit')}, {plural(result.blobs, 'blob')} "
            f"({human_bytes(result.size)}): {result.branch} is at {short(result.remote_head)}; "
            "run pull to update the tree"
        )
    return EXIT_OK


def cmd_pull(args: argparse.Namespace, out: Output) -> int:
    """Fetch, then move the working tree to the fetched head (refusing to overwrite local changes)."""
    result = operations.pull(args.dir, token=_token(args), out=out)
    if result.up_to_date:
        out.result(_up_to_date(result.branch, result.head))
        return EXIT_OK
    fetched = result.fetched.commits
    out.result(
        f"updated {result.branch} {short(result.old_head)} → {short(result.head)}: "
        f"{plural(result.written, 'file')} written, {plural(result.deleted, 'file')} deleted"
        + (f" ({plural(fetched, 'commit')} fetched)" if fetched else "")
    )
    return EXIT_OK


def cmd_merge(args: argparse.Namespace, out: Output) -> int:
    """Merge BRANCH into DIR (``musehub_client.merging``), or give up a pending merge with --abort."""
    if args.abort:
        if args.dir is not None:
            raise ClientError("merge --abort takes only DIR", EXIT_USAGE)
        aborted = merging.abort(args.branch or ".")
        out.result(
            f"merge of {aborted.theirs_branch} aborted: {aborted.branch} is back at {short(aborted.head)} "
            f"({plural(aborted.restored, 'file')} restored, {plural(aborted.removed, 'file')} removed)"
        )
        return EXIT_OK
    if not args.branch:
        raise ClientError("merge needs BRANCH (or --abort)", EXIT_USAGE)
    directory = args.dir or "."
    result = merging.merge(
        directory, args.branch, token=_token(args), message=args.message, author=args.author, out=out
    )
    if result.up_to_date:
        out.result(f"already up to date: {result.branch} holds {result.theirs_branch} ({short(result.theirs)})")
        return EXIT_OK
    if result.clean:
        out.result(
            f"merged {result.theirs_branch} into {result.branch}: commit {short(result.commit_id)} "
            f"({plural(result.written, 'file')} written, {plural(result.deleted, 'file')} deleted); "
            "push to send it"
        )
        return EXIT_OK
    if not result.to_resolve:  # every conflict was a text changed in different lines: merged, nothing marked
        lines = [
            f"merged {result.theirs_branch} into {result.branch} ({plural(result.written, 'file')} written); "
            f"{plural(len(result.conflicts), 'file')} both sides changed, merged line by line:"
        ]
        lines += [f"  {c.path}" for c in result.conflicts]
        lines.append("Check them, then push: it sends the merge commit. `musehub merge --abort` puts the folder back.")
        out.result("\n".join(lines))
        return EXIT_OK
    lines = [
        f"merge of {result.theirs_branch} into {result.branch} stopped: "
        f"{plural(len(result.to_resolve), 'conflict')} to resolve ({plural(result.written, 'file')} merged cleanly)"
    ]
    lines += [f"  {c.path}: {c.hint}" for c in result.conflicts]
    lines.append(
        "Fix them, then push: it sends the merge commit, and refuses while markers or side files remain. "
        "`musehub merge --abort` puts the folder back."
    )
    out.result("\n".join(lines))
    return EXIT_CONFLICT


def cmd_branch_delete(args: argparse.Namespace, out: Output) -> int:
    """Delete a branch of the repository on the hub (not the default branch, nor one an open proposal uses)."""
    result = operations.delete_branch(args.url, args.name, token=_token(args), out=out)
    was = f" (was {short(result.head)})" if result.head else ""
    out.result(f"deleted branch {result.branch} of {result.url}{was}")
    return EXIT_OK


# --- command line -----------------------------------------------------------------------


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """Return the client's argument parser (*prog* is the name shown in usage lines)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The reference MuseHub client: push a folder, clone, fetch and pull over the mpack protocol.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--token", help="API token (default: $MUSEHUB_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace, Output], int], summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    push = add("push", cmd_push, "commit the folder DIR and push it to the repository URL")
    push.add_argument("dir", metavar="DIR", nargs="?", default=None, help="the folder to push (default: .)")
    push.add_argument(
        "url",
        metavar="URL",
        nargs="?",
        default=None,
        help="repository URL, e.g. http://127.0.0.1:8000/alice/demo (default: the one DIR tracks)",
    )
    push.add_argument("--branch", "-b", help="branch to push (default: the tracked branch, else the default branch)")
    push.add_argument(
        "--onto",
        metavar="BRANCH",
        help="commit DIR's files on top of BRANCH's head although DIR tracks another branch (then DIR tracks BRANCH)",
    )
    visibility = push.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private",
        dest="visibility",
        action="store_const",
        const="private",
        help="on a first push, create the repository private (only you and collaborators can read it)",
    )
    visibility.add_argument(
        "--public",
        dest="visibility",
        action="store_const",
        const="public",
        help="on a first push, create the repository public (the default)",
    )
    push.add_argument("--force", "-f", action="store_true", help="move the branch even if not a fast-forward")
    push.add_argument("--message", "-m", help="commit message")
    push.add_argument("--author", help="commit author (default: $MUSEHUB_AUTHOR, else the token's user on the hub)")

    clone = add("clone", cmd_clone, "download a branch of the repository URL into the new folder DIR")
    clone.add_argument("url", metavar="URL")
    clone.add_argument("dir", metavar="DIR")
    clone.add_argument("--branch", "-b", help="branch to clone (default: the repository's default branch)")

    fetch = add("fetch", cmd_fetch, "download new history into DIR/.musehub without touching the files")
    fetch.add_argument("dir", metavar="DIR", nargs="?", default=".")

    pull = add("pull", cmd_pull, "fetch, then update the files of DIR to the branch head")
    pull.add_argument("dir", metavar="DIR", nargs="?", default=".")

    merge = add(
        "merge",
        cmd_merge,
        "fetch BRANCH and merge it into DIR: a merge commit when clean, else both versions marked to resolve",
    )
    merge.add_argument("branch", metavar="BRANCH", nargs="?", help="the branch to merge (with --abort: DIR)")
    merge.add_argument("dir", metavar="DIR", nargs="?", default=None, help="the working folder (default: .)")
    merge.add_argument("--abort", action="store_true", help="give up the pending merge: put DIR back as it was")
    merge.add_argument("--message", "-m", help="merge commit message (default: Merge branch 'BRANCH' into ...)")
    merge.add_argument("--author", help="merge commit author (default: as for push)")

    branch_delete = add(
        "branch-delete", cmd_branch_delete, "delete branch NAME of the repository URL (not its default branch)"
    )
    branch_delete.add_argument("url", metavar="URL", help="repository URL, e.g. http://127.0.0.1:8000/alice/demo")
    branch_delete.add_argument("name", metavar="NAME", help="the branch to delete (names may hold '/')")
    return parser


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    """Run the client with *argv* (default: sys.argv[1:]) and return the exit code; never raises.

    *prog* is the command name usage lines show (``musehub`` for the console script).
    """
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    out = Output(quiet=args.quiet)
    try:
        return args.handler(args, out)
    except ClientError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MalformedPack as exc:
        print(f"error: integrity check failed: {exc.message}", file=sys.stderr)
        return EXIT_SERVER
    except OSError as exc:
        print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line, no traceback
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
