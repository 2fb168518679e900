"""push / clone / fetch / pull as functions: plain arguments in, a result dataclass out.

Nothing here parses arguments or prints. Notes and transfer progress go to the
*out* object a caller passes (:class:`~musehub_client.feedback.Feedback`;
default: nowhere); failures raise :class:`~musehub_client.http.ClientError`
carrying the exit code the command line would end with.

Every operation runs its steps as named phases and returns their wall time in
``result.phases`` ({phase: seconds}); a caller that wants more (the benchmark
records the server requests of each phase) passes ``phases=``, a
:data:`~musehub_client.feedback.PhaseHook` called with each phase's name
around that phase:

- push: "scan" (scan + hash the tree; the ``/refs`` call, and ``/api/v1/user``
  when commits are authored as the token's user, run meanwhile on another
  thread), "refs" (what is left of waiting for their answers), "filter" (``filter-objects``),
  "pack" (build the mpack), "upload" (upload slot + PUT; none when the pack
  goes inline), "push" (the ``mpack/push`` call), "state";
- clone: "refs", "fetch" (the ``mpack/fetch`` call; with ``pack-stream`` it
  also reads, verifies and writes the files as the pack arrives), "download"
  (the same, from a URL), "verify" (the pack's key), "write" (what is left, and state);
- fetch: "refs", "fetch", "download", "verify", "state";
- pull: fetch's phases, then "plan" and "write" (tree and state).

Snapshot deltas (docs/wire.md §2.1) are used when the hub's ``/refs`` lists the
``snapshot-delta`` capability: a push sends its snapshot as a delta against the
parent's (whose manifest the folder's state holds), and fetches ask for deltas,
rebuilding them against the manifests the folder already holds.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musehub_client import merging
from musehub_client.feedback import Feedback, PhaseHook, Phases, Silent, plural, short, warn
from musehub_client.fetching import FetchResult, fetch_into, gather_sources
from musehub_client.http import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    ClientError,
    HubClient,
    capabilities_of,
    integrity_error,
    token_help,
)
from musehub_client.packs import PackReader, PackStore, download_pack, new_commit
from musehub_client.pushing import (
    PushResult,
    default_author,
    plan_push,
    push_commit,
    record_skipped,
    skipped_warning,
)
from musehub_client.state import PACKS_DIR, STATE_DIR, TMP_DIR, State, load_state
from musehub_client.threads import Background
from musehub_client.worktree import (
    ArrivingCheckout,
    TreeScan,
    empty_folder,
    plan_update,
    remove_file,
    remove_tree,
    scan_folder,
    write_file,
)
from musehub_core.ids import blob_id
from musehub_core.protocol import SNAPSHOT_DELTA

DEFAULT_MESSAGE = "Push from the MuseHub client"

__all__ = [
    "DEFAULT_MESSAGE",
    "CloneResult",
    "FetchResult",
    "PullResult",
    "PushResult",
    "BranchDeleteResult",
    "clone",
    "delete_branch",
    "default_author",
    "fetch",
    "fetch_into",
    "load_state",
    "pull",
    "push",
]


# --- push ---------------------------------------------------------------------------------------


VISIBILITIES = ("public", "private")


@dataclass(frozen=True)
class Remote:
    """What the hub answered before a push: the repository's ``/refs``, whether it exists, the token's user."""

    refs: dict[str, Any]  # {"branch_heads": {}} for a repository that does not exist yet
    exists: bool
    user: str | None  # asked only when commits are authored as the token's user


@dataclass(frozen=True)
class PushTarget:
    """Where a push goes and what it builds on, decided from the folder's state and the hub's branch heads."""

    branch: str
    remote_head: str | None  # the branch's head on the hub (None: the push creates the branch)
    parent: str | None  # the commit the push builds on (None: a root commit)
    tracked: State | None  # the folder's state when it tracks this repository (None: another one, or none)

    @property
    def parent_state(self) -> State | None:
        """The folder's state when its recorded head is the parent: the folder holds the parent's tree."""
        if self.tracked is not None and self.parent is not None and self.parent == self.tracked.head:
            return self.tracked
        return None

    @property
    def earlier_commits(self) -> list[str]:
        """The commits the folder's state records for this repository (kept after the push)."""
        return self.tracked.commits if self.tracked is not None else []

    def unchanged(self, manifest: dict[str, str]) -> bool:
        """True when there is nothing to push: the folder's own branch, its tree as recorded, the hub at its head."""
        tracked = self.tracked
        return (
            tracked is not None
            and tracked.branch == self.branch
            and self.parent is not None
            and manifest == tracked.manifest
            and self.remote_head == self.parent
        )


def push_target(
    root: Path, state: State | None, url: str, refs: dict[str, Any], branch: str | None, onto: str | None
) -> PushTarget:
    """Return where a push of *root* to *url* goes (see :func:`push`); refuse (exit 2) another existing branch.

    The branch is *branch*, else the one the folder tracks (same URL), else the
    hub's default branch. The parent is the folder's recorded head for its own
    branch, or for a branch new on the hub (it forks from that head); otherwise
    the branch's head on the hub.
    """
    tracked = state if state is not None and state.url == url else None
    branch = branch or (tracked.branch if tracked is not None else None) or refs.get("default_branch") or "main"
    remote_head = refs["branch_heads"].get(branch)
    if tracked is not None and tracked.branch != branch and remote_head is not None and onto != branch:
        raise ClientError(
            f"{root} tracks branch {tracked.branch}, and {branch} exists on the hub: pushing would commit this "
            f"folder's files on top of {branch}'s head ({short(remote_head)}), replacing {branch}'s files. "
            f"To do that, pass --onto {branch}; to start a new branch from this folder, name one that does not "
            f"exist; to work on {branch}, clone it into another folder (musehub clone {url} DIR "
            f"--branch {branch})",
            EXIT_USAGE,
        )
    builds_on_folder = tracked is not None and (tracked.branch == branch or remote_head is None)
    parent = tracked.head if builds_on_folder and tracked is not None else remote_head
    return PushTarget(branch, remote_head, parent, tracked)


def push(
    directory: str | Path = ".",
    url: str | None = None,
    *,
    token: str | None = None,
    branch: str | None = None,
    onto: str | None = None,
    force: bool = False,
    message: str | None = None,
    author: str | None = None,
    visibility: str | None = None,
    workers: int | None = None,
    out: Feedback | None = None,
    phases: PhaseHook | None = None,
) -> PushResult:
    """Snapshot *directory*, commit it on top of the branch head and push it to the repository *url*.

    *url* defaults to the repository the folder tracks (a clone, or a folder
    pushed before). The branch is *branch* (or *onto*), else the one the folder
    tracks (same URL), else the hub's default branch. The parent is the
    folder's recorded head when it tracks this URL and branch, or when the
    branch is new on the hub (it forks from that head); otherwise the remote
    head (none for a new branch). A folder tracking another branch of *url* is
    refused (exit 2) when the target branch exists, unless *onto* names it:
    its tree then becomes a commit on top of that branch's head.

    A repository that does not exist yet is created by the push under the
    token's user (public), or first through ``POST /api/v1/repos`` with
    *visibility* ("public" or "private") when given; *visibility* for an
    existing repository must match it. Commits are authored as *author*, else
    ``$MUSEHUB_AUTHOR``, else the token's user. An unchanged tree whose head
    the hub already has pushes nothing (``pushed=False``). Entries the folder
    holds that a snapshot cannot (symlinks, special and unreadable files) are
    reported through *out* and listed in the result, never skipped silently.
    On success the folder's state records the new head.

    The steps: scan the tree while the hub answers ``/refs``, prepare the
    repository, choose the branch and parent (:func:`push_target`), make the
    commit, then the one push sequence of :mod:`musehub_client.pushing`.
    """
    started = time.monotonic()
    timer = Phases(phases)
    out = out or Silent()
    root = Path(directory)
    if not root.is_dir():
        raise ClientError(f"{root} is not a folder")
    if merging.in_progress(root):  # this push is the commit that finishes a `musehub merge`
        return merging.push_merge(
            root,
            url,
            token=token,
            branch=branch or onto,
            force=force,
            message=message,
            author=author,
            out=out,
            phases=phases,
        )
    if visibility is not None and visibility not in VISIBILITIES:
        raise ClientError(f"visibility must be public or private, not {visibility!r}", EXIT_USAGE)
    if onto is not None and branch is not None and onto != branch:
        raise ClientError(f"--onto {onto} and --branch {branch} name different branches; pass one", EXIT_USAGE)
    branch = branch or onto
    state = State.load(root)
    client = HubClient(url if url is not None else _tracked_url(root, state), token, out=out)
    if not token:
        client.close()
        raise ClientError(f"pushing needs a token: {token_help(client.hub_root)}", EXIT_AUTH)
    try:
        author = author or os.environ.get("MUSEHUB_AUTHOR")
        scan, remote = _scan_and_ask(root, client, workers=workers, with_user=not author, timer=timer)
        created = _prepare_repository(client, remote, visibility, branch or "main")
        target = push_target(root, state, client.url, remote.refs, branch, onto)
        record_skipped(root, scan.skipped)
        if scan.skipped:
            warn(out, skipped_warning(root, scan.skipped))
        if target.unchanged(scan.manifest):
            return PushResult(
                client.url,
                target.branch,
                target.parent,
                target.parent,
                pushed=False,
                files=len(scan.manifest),
                hashed=scan.hashed,
                skipped=scan.skipped,
                seconds=time.monotonic() - started,
                phases=timer.seconds,
            )
        author = author or remote.user or default_author()
        commit = new_commit(
            scan.manifest,
            [target.parent] if target.parent else [],
            branch=target.branch,
            message=message or DEFAULT_MESSAGE,
            author=author,
        )
        plan = plan_push(
            client,
            root,
            commit,
            scan.manifest,
            parent=target.parent_state,
            new_repository=not remote.exists,
            phases=timer,
        )
        sent = push_commit(
            client, plan, force=force, earlier_commits=target.earlier_commits, workers=workers, phases=timer
        )
    finally:
        client.close()
    return PushResult(
        url=client.url,
        branch=target.branch,
        head=commit["commit_id"],
        parent=target.parent,
        pushed=True,
        files=len(scan.manifest),
        blobs=len(plan.blob_paths),
        pack_bytes=sent.pack_bytes,
        uploaded=sent.uploaded,
        delta=plan.delta,
        created=created,
        author=author,
        hashed=scan.hashed,
        skipped=scan.skipped,
        seconds=time.monotonic() - started,
        phases=timer.seconds,
    )


def _tracked_url(root: Path, state: State | None) -> str:
    """Return the URL of the repository *root* tracks; refuse (exit 2) a folder that tracks none."""
    if state is None:
        raise ClientError(
            f"{root} does not track a repository yet: give its URL, e.g. "
            f"musehub push {root} http://127.0.0.1:8000/OWNER/REPO",
            EXIT_USAGE,
        )
    return state.url


def _remote_refs(client: HubClient, *, with_user: bool) -> Remote:
    """Return the repository's ``/refs`` answer, whether it exists, and the token's user if *with_user*.

    A repository not found is empty.
    """
    try:
        refs, exists = client.refs(), True
    except ClientError as exc:
        if exc.exit_code != EXIT_NOT_FOUND or exc.code not in (None, "repo_not_found", "not_found"):
            raise  # a reserved owner name, a moved repository: the hub's message says what to do
        refs, exists = {"branch_heads": {}}, False
    return Remote(refs, exists, client.user() if with_user else None)


def _scan_and_ask(
    root: Path, client: HubClient, *, workers: int | None, with_user: bool, timer: Phases
) -> tuple[TreeScan, Remote]:
    """Scan *root* ("scan") while another thread asks the hub for ``/refs`` (and the token's user); wait ("refs").

    An error the hub has answered by the time the first file is read stops the
    scan; when both fail, the hub's error is the one raised.
    """
    asked = Background(_remote_refs, client, with_user=with_user)
    try:
        with timer("scan"):
            scan = scan_folder(root, workers=workers, before_reading=lambda _count: asked.raise_if_failed())
    except ClientError:
        asked.result()  # the hub's error, if any, comes first: a bad token says more than a file it stopped at
        raise
    with timer("refs"):
        remote = asked.result()
    return scan, remote


def _prepare_repository(client: HubClient, remote: Remote, visibility: str | None, branch: str) -> str | None:
    """Return the visibility of the repository this push creates (None: it exists; checked against *visibility*)."""
    if remote.exists:
        if visibility is not None:
            _check_visibility(client, visibility)
        return None
    # Created now with *visibility*, else by the push itself: public, as the hub creates repositories on a first push.
    return _create_or_explain(client, remote.user, visibility, branch) or "public"


def _create_or_explain(client: HubClient, user: str | None, visibility: str | None, branch: str) -> str | None:
    """Prepare the first push into a repository ``/refs`` says does not exist; return the visibility created.

    Refuses (exit 5) a namespace that is not the token's user's: a push creates
    repositories only under your own name. With *visibility* the repository is
    created now through ``POST /api/v1/repos``; without it the push creates it
    (public) and None is returned.
    """
    user = user or client.user()
    if user is not None and user.lower() != client.owner.lower():
        raise ClientError(
            f"there is no repository {client.owner}/{client.name} that you ({user}) can read, and a push creates "
            f"repositories only under your own name: push to {client.api_root()}{user}/{client.name}, or ask "
            f"{client.owner} to create it and add you as a collaborator",
            EXIT_NOT_FOUND,
        )
    if visibility is None:
        return None
    client.create_repository(visibility=visibility, default_branch=branch)
    return visibility


def _check_visibility(client: HubClient, visibility: str) -> None:
    """Refuse --private/--public for an existing repository whose visibility differs (they apply on creation)."""
    current = client.repository().get("visibility")
    if current != visibility:
        raise ClientError(
            f"{client.owner}/{client.name} exists already and is {current}; --{visibility} applies only when a push "
            f"creates the repository. Change its visibility in its settings (PATCH {client.api_url('')} "
            f'with {{"visibility": "{visibility}"}}), then push without --{visibility}',
            EXIT_USAGE,
        )


# --- clone --------------------------------------------------------------------------------------


@dataclass
class CloneResult:
    url: str
    branch: str
    root: Path
    head: str | None  # None: the repository was empty
    files: int = 0  # files written
    commits: int = 0
    blobs: int = 0
    pack_bytes: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def clone(
    url: str,
    directory: str | Path,
    *,
    token: str | None = None,
    branch: str | None = None,
    out: Feedback | None = None,
    phases: PhaseHook | None = None,
) -> CloneResult:
    """Download *branch* (default: the hub's default branch) of *url* into the new or empty folder *directory*.

    Every blob, snapshot and commit id is verified; the pack stays in
    ``.musehub/packs``. On failure the folder is removed (or emptied, if it existed).
    """
    started = time.monotonic()
    timer = Phases(phases)
    out = out or Silent()
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ClientError(f"{root} already exists and is not an empty folder")
    client = HubClient(url, token, out=out)
    try:
        with timer("refs"):
            refs = client.refs()
        heads: dict[str, str] = refs["branch_heads"]
        branch = branch or refs.get("default_branch") or "main"
        head = heads.get(branch)
        if head is None and heads:
            raise ClientError(f"{client.url} has no branch {branch!r}", EXIT_NOT_FOUND)

        created = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        checkout: ArrivingCheckout | None = None
        try:
            if head is None:
                State(url=client.url, branch=branch, head=None).save(root)
                return CloneResult(
                    client.url, branch, root, None, seconds=time.monotonic() - started, phases=timer.seconds
                )
            checkout = ArrivingCheckout(root, head, out)
            pack = download_pack(
                client,
                [head],
                [],
                root / STATE_DIR / PACKS_DIR,
                deltas=SNAPSHOT_DELTA in capabilities_of(refs),
                sink=checkout,
                phases=timer,
            )
            with timer("write"):
                manifest, files = checkout.manifest, checkout.files
                if manifest is None:
                    raise integrity_error(f"the pack does not hold commit {head} and its snapshot")
                blobs = {entry.object_id: entry for entry in pack.contents.blobs}
                with PackReader(pack.path) as reader:
                    checkout.finish(lambda oid: reader.read(blobs[oid]), blobs)
                State(
                    url=client.url,
                    branch=branch,
                    head=head,
                    manifest=manifest,
                    commits=[c["commit_id"] for c in pack.contents.commits],
                ).save(root, snapshot_id=checkout.snapshot_id)
        except BaseException:
            if checkout is not None:
                checkout.stop()
            if created:
                remove_tree(root)
            else:
                empty_folder(root)
            raise
    finally:
        client.close()
    return CloneResult(
        url=client.url,
        branch=branch,
        root=root,
        head=head,
        files=len(files),
        commits=len(pack.contents.commits),
        blobs=len(pack.contents.blobs),
        pack_bytes=pack.contents.size,
        seconds=time.monotonic() - started,
        phases=timer.seconds,
    )


# --- fetch --------------------------------------------------------------------------------------


def fetch(
    directory: str | Path = ".",
    *,
    token: str | None = None,
    out: Feedback | None = None,
    phases: PhaseHook | None = None,
) -> FetchResult:
    """Download new history of the folder's branch into ``.musehub/packs`` without touching its files."""
    started = time.monotonic()
    timer = Phases(phases)
    root, state = load_state(directory)
    client = HubClient(state.url, token, out=out or Silent())
    try:
        result = fetch_into(root, state, client, phases=timer)
    finally:
        client.close()
    result.seconds, result.phases = time.monotonic() - started, timer.seconds
    return result


# --- pull ---------------------------------------------------------------------------------------


@dataclass
class PullResult:
    branch: str
    old_head: str | None
    head: str | None  # the folder's head afterwards
    fetched: FetchResult
    up_to_date: bool = False  # nothing to do: the folder was already at the remote head
    written: int = 0
    deleted: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def pull(
    directory: str | Path = ".",
    *,
    token: str | None = None,
    out: Feedback | None = None,
    phases: PhaseHook | None = None,
) -> PullResult:
    """Fetch, then move the folder's files to the fetched head.

    Changed and new files are written, removed ones deleted, unchanged ones left
    alone. Raises ClientError (exit 4) before writing anything when a file it
    would change or delete has local modifications, or an untracked file is in the way.
    """
    started = time.monotonic()
    timer = Phases(phases)
    out = out or Silent()
    root, state = load_state(directory)
    from musehub_client import merging  # merging builds on this module

    merging.refuse_during_merge(root, "pull")
    client = HubClient(state.url, token, out=out)
    try:
        fetched = fetch_into(root, state, client, phases=timer)
        target = fetched.remote_head
        if target is None or target == state.head:
            return PullResult(
                state.branch,
                state.head,
                state.head,
                fetched,
                up_to_date=True,
                seconds=time.monotonic() - started,
                phases=timer.seconds,
            )
        deltas = SNAPSHOT_DELTA in fetched.capabilities
        with timer("plan"):
            store = PackStore.open(root)
            new = store.manifest_of(target)
        stage = root / STATE_DIR / TMP_DIR / uuid.uuid4().hex
        try:
            if new is None:
                out.note("the local packs lack the new head's snapshot; downloading it in full")
                pack = download_pack(client, [target], [], stage, deltas=deltas, lookup=store.lookup, phases=timer)
                store.add(pack.path, pack.contents, pack.manifests)
                new = store.manifest_of(target)
                if new is None:
                    raise integrity_error(f"the pack does not hold commit {target} and its snapshot")
            with timer("plan"):
                update = plan_update(root, state.manifest, new)
            if update.conflicts:
                shown = "; ".join(update.conflicts[:5]) + (
                    f"; and {len(update.conflicts) - 5} more" if len(update.conflicts) > 5 else ""
                )
                raise ClientError(f"pull would overwrite local changes: {shown}", EXIT_CONFLICT)
            needed = set(update.writes.values())
            staged, missing = gather_sources(root, state, store, needed, stage)
            if missing:
                out.note(f"{plural(len(missing), 'blob')} not held locally; downloading {short(target)} in full")
                pack = download_pack(client, [target], [], stage, deltas=deltas, lookup=store.lookup, phases=timer)
                store.add(pack.path, pack.contents, pack.manifests)
                lacking = missing - set(store.blobs)
                if lacking:
                    raise integrity_error(f"the hub's pack lacks blob {sorted(lacking)[0]}")
            with timer("write"):
                for relative in update.deletes:
                    remove_file(root, relative)
                for relative, oid in update.writes.items():
                    content = staged[oid].read_bytes() if oid in staged else store.read(oid)
                    if oid in staged and blob_id(content) != oid:
                        raise integrity_error(f"staged blob {oid} changed")
                    write_file(root, relative, content)
        finally:
            remove_tree(stage)
            with contextlib.suppress(OSError):
                (root / STATE_DIR / TMP_DIR).rmdir()

        old_head = state.head
        with timer("write"):
            state.head = target
            state.manifest = dict(new)
            state.fetched_head = None
            state.save(root)
    finally:
        client.close()
    return PullResult(
        branch=state.branch,
        old_head=old_head,
        head=target,
        fetched=fetched,
        written=len(update.writes),
        deleted=len(update.deletes),
        seconds=time.monotonic() - started,
        phases=timer.seconds,
    )


# --- branch delete ------------------------------------------------------------------------------


@dataclass
class BranchDeleteResult:
    url: str
    branch: str
    head: str | None  # the commit the branch pointed at (its commits stay on the hub)
    seconds: float = 0.0


def delete_branch(url: str, name: str, *, token: str | None = None, out: Feedback | None = None) -> BranchDeleteResult:
    """Delete branch *name* of the repository *url* on the hub (the REST API; needs the write role).

    The hub refuses the default branch and a branch an open proposal uses
    (ClientError, exit 4); an unknown branch is exit 5. Working folders that
    track the branch are not touched.
    """
    started = time.monotonic()
    client = HubClient(url, token, out=out or Silent())
    try:
        answer = client.delete_branch(name)
    finally:
        client.close()
    head = answer.get("head_commit_id")
    return BranchDeleteResult(
        url=client.url,
        branch=str(answer.get("name") or name),
        head=head if isinstance(head, str) and head else None,
        seconds=time.monotonic() - started,
    )
