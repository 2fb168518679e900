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

Snapshot deltas (wire.md §2.1) are used when the hub's ``/refs`` lists the
``snapshot-delta`` capability: a push sends its snapshot as a delta against the
parent's (whose manifest the folder's state holds), and fetches ask for deltas,
rebuilding them against the manifests the folder already holds.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musehub_client.feedback import Feedback, PhaseHook, Silent, no_phases, plural, short, warn
from musehub_client.http import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_SERVER,
    EXIT_USAGE,
    ClientError,
    HubClient,
    capabilities_of,
    integrity_error,
    token_help,
)
from musehub_client.packs import (
    PackReader,
    PackStore,
    build_push_pack,
    download_pack,
    kept_manifests,
    make_commit,
    missing_blob_paths,
    remove_pack,
)
from musehub_client.state import PACKS_DIR, SKIPPED_FILE, STATE_DIR, STATE_FILE, TMP_DIR, State
from musehub_client.threads import Background
from musehub_client.worktree import (
    ArrivingCheckout,
    Skipped,
    empty_folder,
    plan_update,
    remove_file,
    remove_tree,
    scan_folder,
    write_file,
)
from musehub_core.ids import blob_id, hex_of
from musehub_core.manifests import BaseLookup
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


class _Phases:
    """A PhaseHook that adds up each phase's wall time, run inside the caller's hook."""

    def __init__(self, hook: PhaseHook | None) -> None:
        self.hook = hook or no_phases
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        with self.hook(name):
            started = time.perf_counter()
            try:
                yield
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


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


def load_state(directory: str | Path) -> tuple[Path, State]:
    """Return (root, state) of a working folder, or raise ClientError when it has no state."""
    root = Path(directory)
    state = State.load(root)
    if state is None:
        raise ClientError(f"{root} is not a MuseHub working folder (no {STATE_DIR}/{STATE_FILE}); clone first")
    return root, state


def _local_manifests(root: Path, state: State) -> BaseLookup:
    """Return the BaseLookup of a working folder: its head's manifest, the manifests kept beside its packs,
    then its packs' (opened only if needed)."""

    def lookup(snapshot_ids: list[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        if state.head is not None:
            head_snapshot = state.snapshot_id()
            if head_snapshot in snapshot_ids:
                found[head_snapshot] = state.manifest
        rest = [sid for sid in snapshot_ids if sid not in found]
        if rest:
            found.update(kept_manifests(root / STATE_DIR / PACKS_DIR, rest))
            rest = [sid for sid in rest if sid not in found]
        if rest:
            found.update(PackStore.open(root).lookup(rest))
        return found

    return lookup


# --- push ---------------------------------------------------------------------------------------


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


VISIBILITIES = ("public", "private")


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


def _record_skipped(root: Path, skipped: Skipped) -> None:
    """Write the full list of skipped entries to ``.musehub/skipped.txt`` (remove it when nothing was skipped)."""
    path = root / STATE_DIR / SKIPPED_FILE
    with contextlib.suppress(OSError):
        if skipped:
            path.parent.mkdir(exist_ok=True)
            path.write_text("".join(f"{p}\t{reason}\n" for p, reason in skipped.all()), encoding="utf-8")
        else:
            path.unlink(missing_ok=True)


def _remote_refs(client: HubClient, *, with_user: bool) -> tuple[dict[str, Any], bool, str | None]:
    """Return (the repository's ``/refs`` answer, whether it exists, the token's user if *with_user*).

    A repository not found is empty.
    """
    try:
        refs, exists = client.refs(), True
    except ClientError as exc:
        if exc.exit_code != EXIT_NOT_FOUND or exc.code not in (None, "repo_not_found", "not_found"):
            raise  # a reserved owner name, a moved repository: the hub's message says what to do
        refs, exists = {"branch_heads": {}}, False
    return refs, exists, client.user() if with_user else None


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
    """
    started = time.monotonic()
    timer = _Phases(phases)
    out = out or Silent()
    root = Path(directory)
    if not root.is_dir():
        raise ClientError(f"{root} is not a folder")
    from musehub_client import merging  # merging builds on this module

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
    if url is None:
        if state is None:
            raise ClientError(
                f"{root} does not track a repository yet: give its URL, e.g. "
                f"musehub push {root} http://127.0.0.1:8000/OWNER/REPO",
                EXIT_USAGE,
            )
        url = state.url
    client = HubClient(url, token, out=out)
    if not token:
        client.close()
        raise ClientError(f"pushing needs a token: {token_help(client.hub_root)}", EXIT_AUTH)
    try:
        tracks_url = state is not None and state.url == client.url
        # The hub answers while the tree is scanned (and names the token's user, when commits need it).
        asked = Background(_remote_refs, client, with_user=not (author or os.environ.get("MUSEHUB_AUTHOR")))
        try:
            with timer("scan"):
                scan = scan_folder(root, workers=workers, before_reading=lambda _count: asked.raise_if_failed())
                manifest = scan.manifest
        except ClientError:
            asked.result()  # the hub's error, if any, comes first: a bad token says more than a file it stopped at
            raise
        with timer("refs"):
            refs, exists, user = asked.result()
        created = None
        if not exists:
            created = _create_or_explain(client, user, visibility, branch or "main")
        elif visibility is not None:
            _check_visibility(client, visibility)
        heads: dict[str, str] = refs["branch_heads"]
        branch = branch or (state.branch if state and tracks_url else None) or refs.get("default_branch") or "main"
        remote_head = heads.get(branch)
        tracks_branch = state is not None and tracks_url and state.branch == branch
        if state is not None and tracks_url and not tracks_branch and remote_head is not None and onto != branch:
            raise ClientError(
                f"{root} tracks branch {state.branch}, and {branch} exists on the hub: pushing would commit this "
                f"folder's files on top of {branch}'s head ({short(remote_head)}), replacing {branch}'s files. "
                f"To do that, pass --onto {branch}; to start a new branch from this folder, name one that does not "
                f"exist; to work on {branch}, clone it into another folder (musehub clone {client.url} DIR "
                f"--branch {branch})",
                EXIT_USAGE,
            )
        # Build on DIR's own head for its branch, or for a branch new on the hub (it forks from DIR's head).
        use_local = state is not None and tracks_url and (tracks_branch or remote_head is None)
        parent = state.head if use_local and state is not None else remote_head

        _record_skipped(root, scan.skipped)
        if scan.skipped:
            warn(out, skipped_warning(root, scan.skipped))
        if state is not None and tracks_branch and parent and manifest == state.manifest and remote_head == parent:
            return PushResult(
                client.url,
                branch,
                parent,
                parent,
                pushed=False,
                files=len(manifest),
                hashed=scan.hashed,
                skipped=scan.skipped,
                seconds=time.monotonic() - started,
                phases=timer.seconds,
            )

        # The hub holds DIR's recorded head (and its snapshot and blobs) when that head is the parent.
        parent_is_local = state is not None and tracks_url and parent is not None and parent == state.head
        base = None
        if parent_is_local and state is not None and SNAPSHOT_DELTA in capabilities_of(refs):
            base = (state.snapshot_id(), state.manifest)
        author = author or os.environ.get("MUSEHUB_AUTHOR") or user or default_author()
        commit, snapshot = make_commit(
            manifest,
            parent,
            branch=branch,
            message=message or DEFAULT_MESSAGE,
            author=author,
            base=base,
        )
        known = state.manifest.values() if state is not None and tracks_url and parent == state.head else ()
        with timer("filter"):
            if exists:
                # A delta against the parent's manifest: only the paths it sets can hold blobs the parent lacks.
                changed = snapshot["set"] if known and "base" in snapshot else manifest
                blob_paths = missing_blob_paths(client, changed, known, root=root)
            else:  # a repository this push creates (or just created) holds nothing: no filter-objects calls
                blob_paths = {}
                for relative, oid in manifest.items():
                    blob_paths.setdefault(oid, relative)

        with tempfile.TemporaryFile(prefix="musehub-push-", suffix=".mpack") as handle:
            with timer("pack"):
                mpack_key, size = build_push_pack(
                    handle,
                    root,
                    commit=commit,
                    snapshot=snapshot,
                    blob_paths=blob_paths,
                    branch=branch,
                    workers=workers,
                )
            sent, answer = client.push_pack(
                handle,
                size,
                mpack_key=mpack_key,
                branch=branch,
                head_commit_id=commit["commit_id"],
                force=force,
                commits_count=1,
                blobs_count=len(blob_paths),
                phases=timer,
            )
        if answer.get("head_commit_id") not in (None, commit["commit_id"]):
            raise ClientError(
                f"the hub moved {branch} to {answer.get('head_commit_id')}, not to our commit", EXIT_SERVER
            )
        if created is None and not exists:
            created = "public"  # the push created it, as the hub creates repositories on a first push
        with timer("state"):
            recorded = state.commits if state is not None and tracks_url else []
            State(
                url=client.url,
                branch=branch,
                head=commit["commit_id"],
                manifest=manifest,
                commits=[*recorded, commit["commit_id"]],
            ).save(root, snapshot_id=commit["snapshot_id"])
    finally:
        client.close()
    return PushResult(
        url=client.url,
        branch=branch,
        head=commit["commit_id"],
        parent=parent,
        pushed=True,
        files=len(manifest),
        blobs=len(blob_paths),
        pack_bytes=size,
        uploaded=sent,
        delta="base" in snapshot,
        created=created,
        author=author,
        hashed=scan.hashed,
        skipped=scan.skipped,
        seconds=time.monotonic() - started,
        phases=timer.seconds,
    )


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
    timer = _Phases(phases)
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


@dataclass
class FetchResult:
    remote_head: str | None  # None only while the branch has never existed (an empty clone)
    commits: int = 0  # commits downloaded
    blobs: int = 0
    size: int = 0  # bytes of the downloaded pack
    url: str = ""
    branch: str = ""
    head: str | None = None  # the folder's head (fetch does not move it)
    capabilities: frozenset[str] = frozenset()  # what the hub's /refs listed
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def fetch_into(root: Path, state: State, client: HubClient, *, phases: PhaseHook = no_phases) -> FetchResult:
    """Download what *state* lacks of its branch into ``.musehub/packs`` and record ``fetched_head``."""
    with phases("refs"):
        refs = client.refs()
    capabilities = capabilities_of(refs)
    remote = refs["branch_heads"].get(state.branch)
    result = FetchResult(remote, url=state.url, branch=state.branch, head=state.head, capabilities=capabilities)
    if remote is None:
        if state.head is None:
            return result  # cloned empty, still empty
        raise ClientError(f"{state.url} has no branch {state.branch!r} any more", EXIT_NOT_FOUND)
    if remote in (state.head, state.fetched_head):
        with phases("state"):
            state.fetched_head = remote
            state.save(root)
        return result
    pack = download_pack(
        client,
        [remote],
        state.have(),
        root / STATE_DIR / PACKS_DIR,
        deltas=SNAPSHOT_DELTA in capabilities,
        lookup=_local_manifests(root, state),
        phases=phases,
    )
    with phases("state"):
        pack_commits = [c["commit_id"] for c in pack.contents.commits]
        if remote not in pack_commits and remote not in state.commits:
            remove_pack(pack.path)
            raise integrity_error(f"the fetch pack does not hold the branch head {remote}")
        if not pack.contents.commits and not pack.contents.blobs:
            remove_pack(pack.path)
        state.commits = [*state.commits, *pack_commits]
        state.fetched_head = remote
        state.save(root)
    result.commits, result.blobs, result.size = len(pack_commits), len(pack.contents.blobs), pack.contents.size
    return result


def fetch(
    directory: str | Path = ".",
    *,
    token: str | None = None,
    out: Feedback | None = None,
    phases: PhaseHook | None = None,
) -> FetchResult:
    """Download new history of the folder's branch into ``.musehub/packs`` without touching its files."""
    started = time.monotonic()
    timer = _Phases(phases)
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


def gather_sources(
    root: Path, state: State, store: PackStore, needed: set[str], stage: Path
) -> tuple[dict[str, Path], set[str]]:
    """Copy blobs not in any pack but present unmodified in the tree into *stage*; return (staged, still missing)."""
    staged: dict[str, Path] = {}
    wanted = needed - set(store.blobs)
    by_oid: dict[str, list[str]] = {}
    for relative, oid in state.manifest.items():
        if oid in wanted:
            by_oid.setdefault(oid, []).append(relative)
    for oid, paths in by_oid.items():
        for relative in paths:
            path = root / relative
            try:
                if not path.is_file() or path.is_symlink():
                    continue
                raw = path.read_bytes()
            except OSError:
                continue
            if blob_id(raw) == oid:
                stage.mkdir(parents=True, exist_ok=True)
                staged[oid] = stage / hex_of(oid)
                staged[oid].write_bytes(raw)
                break
    return staged, wanted - set(staged)


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
    timer = _Phases(phases)
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
