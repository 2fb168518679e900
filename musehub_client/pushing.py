"""The one push sequence: plan → pack → upload/push → save state.

``musehub push`` (:func:`musehub_client.operations.push`: the folder's tree on
top of the branch) and the push that finishes a merge
(:func:`musehub_client.merging.push_merge`: the two-parent merge commit) each
decide what to commit, then run the same steps, each a phase of the caller's
timer:

1. :func:`plan_push` ("filter"): the snapshot to send (a delta against the
   parent's when the hub lists ``snapshot-delta`` and the folder holds the
   parent's tree) and the blobs the hub lacks, as a :class:`PushPlan`;
2. :func:`send_push` ("pack", then "upload" unless the pack goes inline,
   "push"): the commit, its snapshot and those blobs streamed into one mpack,
   handed to the hub, and the hub's answer checked;
3. :func:`save_pushed` ("state"): the folder's state records the new head.

:func:`push_commit` runs steps 2 and 3. Also here: what both report,
:class:`PushResult`, who commits are authored as (:func:`default_author`), and
the warning for what a scan could not store (:func:`skipped_warning`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musehub_client.feedback import PhaseHook, no_phases, plural
from musehub_client.http import EXIT_SERVER, ClientError, HubClient
from musehub_client.packs import build_push_pack, missing_blob_paths, push_snapshot
from musehub_client.state import SKIPPED_FILE, STATE_DIR, State
from musehub_client.worktree import Skipped
from musehub_core.protocol import SNAPSHOT_DELTA
from musehub_core.records import CommitDict


@dataclass
class PushResult:
    url: str
    branch: str
    head: str | None  # the branch head afterwards (the unchanged parent when nothing was pushed)
    parent: str | None
    pushed: bool  # False: nothing to push (tree unchanged, hub already at the recorded head)
    files: int = 0
    blobs: int = 0  # blobs in the pack (those the hub lacked)
    pack_bytes: int = 0
    uploaded: int = 0  # bytes sent (0 when the hub already held the pack)
    delta: bool = False  # the snapshot travelled as a delta against the parent's
    created: str | None = None  # the visibility of the repository this push created (None: it existed)
    author: str = ""
    hashed: int = 0  # files read by the scan (the rest were unchanged by their stat)
    skipped: Skipped = field(default_factory=Skipped)  # what the folder holds that a snapshot cannot
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def default_author(client: HubClient | None = None) -> str:
    """Return who commits are authored as: ``$MUSEHUB_AUTHOR``, else the token's user, else the OS user name.

    The token's user comes from the hub (``GET /api/v1/user``) when *client* has
    a token, so commits and the hub's own merges name the same person.
    """
    env = os.environ.get("MUSEHUB_AUTHOR")
    if env:
        return env
    if client is not None:
        name = client.user()
        if name:
            return name
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def skipped_warning(root: Path, skipped: Skipped, *, shown: int = 20) -> str:
    """Return the warning for entries of *root* a push did not store: counted by kind, named, and why."""
    kinds, why = [], []
    if skipped.symlinks:
        kinds.append(plural(len(skipped.symlinks), "symlink"))
        why.append(
            "symlinks are neither followed nor stored (following one could store files from outside the "
            "folder; copy the file or folder in to store its content)"
        )
    if skipped.special:
        kinds.append(plural(len(skipped.special), "special file") + " (pipes, sockets, devices)")
        why.append("special files have no content to store")
    if skipped.unreadable:
        kinds.append(plural(len(skipped.unreadable), "unreadable entry").replace("entrys", "entries"))
        why.append("what the client cannot read is left out of this commit (fix its permissions and push again)")
    entries = skipped.all()
    lines = [f"warning: not pushed: {', '.join(kinds)}. A Muse snapshot holds regular files only: {'; '.join(why)}."]
    lines += [f"  {path}  ({reason})" for path, reason in entries[:shown]]
    if len(entries) > shown:
        lines.append(f"  ... and {len(entries) - shown} more, all listed in {root / STATE_DIR / SKIPPED_FILE}")
    return "\n".join(lines)


def record_skipped(root: Path, skipped: Skipped) -> None:
    """Write the full list of skipped entries to ``.musehub/skipped.txt`` (remove it when nothing was skipped)."""
    path = root / STATE_DIR / SKIPPED_FILE
    with contextlib.suppress(OSError):
        if skipped:
            path.parent.mkdir(exist_ok=True)
            path.write_text("".join(f"{p}\t{reason}\n" for p, reason in skipped.all()), encoding="utf-8")
        else:
            path.unlink(missing_ok=True)


# --- the sequence -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushPlan:
    """What one push sends: a commit of the folder's tree, its snapshot, and the blobs the hub lacks."""

    root: Path
    commit: CommitDict
    manifest: dict[str, str]  # the commit's tree
    snapshot: dict[str, Any]  # as it travels: full, or a delta against the parent's
    blob_paths: dict[str, str]  # {object id: a path under root holding it}: the blobs the pack carries

    @property
    def branch(self) -> str:
        return self.commit["branch"]

    @property
    def delta(self) -> bool:
        """True when the snapshot travels as a delta against the parent's."""
        return "base" in self.snapshot


@dataclass(frozen=True)
class Sent:
    """What handing a plan to the hub cost."""

    pack_bytes: int
    uploaded: int  # bytes sent (0 when the hub already held the pack)


def plan_push(
    client: HubClient,
    root: Path,
    commit: CommitDict,
    manifest: dict[str, str],
    *,
    parent: State | None,
    new_repository: bool = False,
    phases: PhaseHook = no_phases,
) -> PushPlan:
    """Return what pushing *commit* (whose tree is *manifest*, the files under *root*) sends.

    *parent* is the folder's state when its recorded head is the commit's
    parent, which the hub holds: the snapshot then travels as a delta against
    its tree when the hub lists ``snapshot-delta`` (and that is smaller), and
    only blobs that tree lacks are asked about (:func:`missing_blob_paths`).
    A *new_repository* (one this push creates, or just created) holds nothing:
    every blob is sent, and the hub is not asked.
    """
    base = None
    if parent is not None and SNAPSHOT_DELTA in client.capabilities:
        base = (parent.snapshot_id(), parent.manifest)
    snapshot = push_snapshot(commit, manifest, base)
    with phases("filter"):
        if new_repository:
            blob_paths: dict[str, str] = {}
            for relative, oid in manifest.items():
                blob_paths.setdefault(oid, relative)
        else:
            known = parent.manifest.values() if parent is not None else ()
            # A delta against the parent's manifest: only the paths it sets can hold blobs the parent lacks.
            changed = snapshot["set"] if known and "base" in snapshot else manifest
            blob_paths = missing_blob_paths(client, changed, known, root=root)
    return PushPlan(root, commit, manifest, snapshot, blob_paths)


def send_push(
    client: HubClient, plan: PushPlan, *, force: bool, workers: int | None = None, phases: PhaseHook = no_phases
) -> Sent:
    """Stream *plan* into one mpack ("pack") and push it (:meth:`HubClient.push_pack`: "upload", "push").

    Raises ClientError with the hub's refusal (a branch that cannot
    fast-forward without *force*: exit 4), or exit 6 when the hub moved the
    branch anywhere but to the commit.
    """
    commit_id = plan.commit["commit_id"]
    with tempfile.TemporaryFile(prefix="musehub-push-", suffix=".mpack") as handle:
        with phases("pack"):
            mpack_key, size = build_push_pack(
                handle,
                plan.root,
                commit=plan.commit,
                snapshot=plan.snapshot,
                blob_paths=plan.blob_paths,
                branch=plan.branch,
                workers=workers,
            )
        sent, answer = client.push_pack(
            handle,
            size,
            mpack_key=mpack_key,
            branch=plan.branch,
            head_commit_id=commit_id,
            force=force,
            commits_count=1,
            blobs_count=len(plan.blob_paths),
            phases=phases,
        )
    if answer.get("head_commit_id") not in (None, commit_id):
        raise ClientError(
            f"the hub moved {plan.branch} to {answer.get('head_commit_id')}, not to our commit", EXIT_SERVER
        )
    return Sent(pack_bytes=size, uploaded=sent)


def save_pushed(plan: PushPlan, url: str, earlier_commits: list[str]) -> None:
    """Record the pushed commit as the folder's head of *plan*'s branch of *url* (after *earlier_commits*)."""
    commit_id = plan.commit["commit_id"]
    State(
        url=url,
        branch=plan.branch,
        head=commit_id,
        manifest=plan.manifest,
        commits=[*earlier_commits, commit_id],
    ).save(plan.root, snapshot_id=plan.commit["snapshot_id"])


def push_commit(
    client: HubClient,
    plan: PushPlan,
    *,
    force: bool,
    earlier_commits: list[str],
    workers: int | None = None,
    phases: PhaseHook = no_phases,
) -> Sent:
    """Send *plan* (:func:`send_push`), then record it in the folder's state (:func:`save_pushed`, "state")."""
    sent = send_push(client, plan, force=force, workers=workers, phases=phases)
    with phases("state"):
        save_pushed(plan, client.url, earlier_commits)
    return sent
