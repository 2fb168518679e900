"""``musehub merge``: merge another branch into a working folder, and the commit that finishes the merge.

The resolve flow (docs/client.md, "Resolving a conflict"):

1. ``merge BRANCH [DIR]`` fetches the folder's branch (it must not have moved on
   the hub: pull first) and BRANCH, asks the hub for their merge base (the
   REST ``compare`` answer: the base the hub's proposals merge against) and
   merges the three trees with :func:`musehub_core.merge.three_way`, the
   function behind the hub's proposals, so a tree that merges cleanly here
   merges to the same manifest there. Like the hub's ``merge`` strategy it
   always makes a two-parent commit (never a fast-forward).
2. Clean: the merged tree is written and the two-parent commit (parents: the
   folder's head, BRANCH's head) is made locally; the next ``push`` sends it.
3. Conflicts: every path that merged cleanly is written, and each conflicting
   path is written with both versions marked:

   - text (both versions UTF-8 without NUL bytes): merged line by line
     against the base (diff3, :func:`merge_text`); each run of lines both sides
     changed differently is written as ``<<<<<<< ours (BRANCH-HERE)`` / our
     lines / ``=======`` / their lines / ``>>>>>>> theirs (BRANCH)``. A file
     added on both sides is one such section; a side that deleted the file is
     an empty section labelled ``deleted`` (delete the file to accept the
     deletion). A file whose changes touch different lines is written merged,
     with no markers: check it before pushing.
   - binary: the version not left at the path goes beside it, as
     ``PATH.theirs`` (theirs, ours staying at PATH; or ours deleted and theirs
     changed) or ``PATH.ours`` (ours moved away because theirs deleted the file,
     or because theirs holds a folder at PATH). Keep one version (rename the
     side file over PATH, or delete it).

   The pending merge is recorded in ``DIR/.musehub/merge.json`` and our side
   of every file it changed is kept in ``DIR/.musehub/merge-ours/``.
4. ``push`` while a merge is recorded (:func:`push_merge`) refuses (exit 4)
   while any marked file still holds a ``<<<<<<<`` or ``>>>>>>>`` line or any
   side file is still there, then sends one commit of the folder's tree with
   the parents [the folder's head, BRANCH's head]; pull refuses while a merge
   is recorded.
5. ``merge --abort [DIR]`` (:func:`abort`) puts back every file the merge
   touched as it was at the folder's head, removes the side files and forgets
   the merge.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from musehub_client.feedback import Feedback, PhaseHook, Phases, Silent, plural, short
from musehub_client.fetching import fetch_into, folder_manifests, gather_sources
from musehub_client.http import (
    API_TIMEOUT,
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_SERVER,
    EXIT_USAGE,
    ClientError,
    HubClient,
    capabilities_of,
    exit_code_for_status,
    integrity_error,
    normalize_url,
)
from musehub_client.packs import PackStore, download_pack, new_commit
from musehub_client.pushing import PushResult, default_author, plan_push, push_commit, skipped_warning
from musehub_client.state import PACKS_DIR, STATE_DIR, TMP_DIR, State, load_state
from musehub_client.worktree import local_oid, plan_update, remove_file, remove_tree, scan_folder, write_file
from musehub_core.ids import blob_id, compute_snapshot_id, hex_of, is_id
from musehub_core.merge import (
    BOTH_ADDED,
    BOTH_MODIFIED,
    DELETED_MODIFIED,
    FILE_DIRECTORY,
    MODIFIED_DELETED,
    three_way,
)
from musehub_core.protocol import JSON_TYPE, SNAPSHOT_DELTA
from musehub_core.records import CommitDict

MERGE_FILE = "merge.json"
BACKUP_DIR = "merge-ours"
MARKERS = (b"<<<<<<< ", b">>>>>>> ")
MARKED = "markers"  # how a conflict was written: one file with conflict markers
SIDE_FILES = "side-files"  # or one version at the path (or none) and the other beside it

__all__ = [
    "Conflict",
    "MergeRecord",
    "MergeResult",
    "AbortResult",
    "abort",
    "in_progress",
    "merge",
    "push_merge",
    "refuse_during_merge",
    "unresolved",
]


# --- the pending merge (.musehub/merge.json) ---------------------------------------------------


@dataclass
class Conflict:
    """One conflicting path, as the merge wrote it: *files* are the marked file or the side files."""

    path: str
    kind: str
    how: str  # MARKED or SIDE_FILES
    files: list[str]
    hint: str  # what to do, in one sentence
    open: bool = True  # False: a text changed in different lines, merged with no marker (nothing to resolve)


@dataclass
class MergeRecord:
    """A merge waiting for its commit: ``DIR/.musehub/merge.json``."""

    url: str
    branch: str  # the folder's branch (merged into)
    theirs_branch: str
    ours: str  # the folder's head when the merge started: the first parent
    theirs: str  # the merged branch's head: the second parent
    base: str | None
    message: str
    author: str
    touched: list[str] = field(default_factory=list)  # every path the merge wrote or removed (abort restores them)
    absent: list[str] = field(default_factory=list)  # paths of the head that were deleted here before the merge
    conflicts: list[Conflict] = field(default_factory=list)
    commit: CommitDict | None = None  # the local merge commit of a clean merge

    @staticmethod
    def path(root: Path) -> Path:
        return root / STATE_DIR / MERGE_FILE

    @classmethod
    def load(cls, root: Path) -> MergeRecord | None:
        path = cls.path(root)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data["conflicts"] = [Conflict(**c) for c in data.get("conflicts") or []]
            record = cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise ClientError(
                f"{path} is damaged ({exc}); delete it and {STATE_DIR}/{BACKUP_DIR}/ to forget the merge", EXIT_ERROR
            ) from None
        if not (is_id(record.ours) and is_id(record.theirs) and (record.base is None or is_id(record.base))):
            raise ClientError(f"{path} is damaged (a commit id is not 'sha256:' + 64 hex)", EXIT_ERROR)
        return record

    def save(self, root: Path) -> None:
        path = self.path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{MERGE_FILE}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def forget(cls, root: Path) -> None:
        """Remove the record and the saved copies of our side."""
        cls.path(root).unlink(missing_ok=True)
        remove_tree(root / STATE_DIR / BACKUP_DIR)


def in_progress(root: str | Path) -> bool:
    """Return True while a merge waits for its commit in the folder *root*."""
    return MergeRecord.path(Path(root)).is_file()


HOW_TO_FINISH = "resolve the conflicts and push to finish it, or run `musehub merge --abort` to give it up"


def refuse_during_merge(root: str | Path, action: str) -> None:
    """Raise ClientError (exit 4) when a merge is pending in *root*: *action* (e.g. "pull") would lose it."""
    record = MergeRecord.load(Path(root))
    if record is not None:
        raise ClientError(
            f"cannot {action}: {root} is merging {record.theirs_branch} into {record.branch}; " + HOW_TO_FINISH,
            EXIT_CONFLICT,
        )


# --- merge ------------------------------------------------------------------------------------


@dataclass
class MergeResult:
    branch: str  # the folder's branch
    theirs_branch: str
    ours: str
    theirs: str
    base: str | None
    up_to_date: bool = False  # the folder's branch already holds BRANCH's head: nothing to do
    commit_id: str | None = None  # the local merge commit (clean merges), pushed by the next push
    conflicts: list[Conflict] = field(default_factory=list)
    written: int = 0
    deleted: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """True when the trees merged cleanly by the hub's rules (the merge commit is made)."""
        return not self.up_to_date and not self.conflicts

    @property
    def to_resolve(self) -> list[Conflict]:
        """The conflicts left marked for the user (texts merged line by line without markers are not)."""
        return [c for c in self.conflicts if c.open]


def _api_get(client: HubClient, suffix: str) -> dict[str, Any]:
    """GET the repository's REST ``suffix`` as JSON; failures raise ClientError with the hub's message."""
    url = client.api_url(suffix)
    try:
        response = client.session.get(url, headers={"Accept": JSON_TYPE}, timeout=API_TIMEOUT)
    except requests.RequestException as exc:
        raise ClientError(f"cannot reach {url}: {type(exc).__name__}", EXIT_SERVER) from None
    answer: Any = None
    with contextlib.suppress(ValueError):
        answer = response.json()
    if not response.ok:
        detail = answer.get("detail") if isinstance(answer, dict) else None
        raise ClientError(
            str(detail or f"HTTP {response.status_code} from {url}"), exit_code_for_status(response.status_code)
        )
    if not isinstance(answer, dict):
        raise ClientError(f"the hub sent an unreadable answer to {suffix.split('/')[0]}", EXIT_SERVER)
    return answer


def merge_base(client: HubClient, ours: str, theirs: str) -> str | None:
    """Return the hub's merge base of two commits (``GET …/compare/OURS...THEIRS``), None for unrelated ones."""
    answer = _api_get(client, f"compare/{quote(ours)}...{quote(theirs)}")
    base = answer.get("merge_base_commit_id")
    if base is not None and not is_id(base):
        raise integrity_error(f"the hub named merge base {base!r}, not a commit id")
    return base


class _History:
    """The manifests and blobs the merge reads: the folder's packs, then what it downloads."""

    def __init__(self, root: Path, state: State, client: HubClient, deltas: bool, timer: Phases) -> None:
        self.root, self.state, self.client, self.deltas, self.timer = root, state, client, deltas, timer
        self.store = PackStore.open(root)

    def _download(self, want: str, have: list[str], *, deltas: bool, folder: Path | None = None) -> None:
        pack = download_pack(
            self.client,
            [want],
            have,
            folder or self.root / STATE_DIR / PACKS_DIR,
            deltas=deltas,
            lookup=folder_manifests(self.root, self.state),
            phases=self.timer,
        )
        self.store.add(pack.path, pack.contents, pack.manifests)
        if folder is None:
            self.state.commits = [*self.state.commits, *(c["commit_id"] for c in pack.contents.commits)]
            self.state.save(self.root)

    def manifest(self, commit_id: str, *, fetch_history: bool) -> dict[str, str]:
        """Return the manifest of *commit_id*, downloading what the folder lacks.

        With *fetch_history* the commits up to it that the folder lacks are
        downloaded (with their blobs); otherwise, or when that is not enough, only
        the commit itself, its full snapshot and the blobs it changed (its
        parents are asked from the REST API).
        """
        if commit_id == self.state.head:
            return dict(self.state.manifest)
        found = self.store.manifest_of(commit_id)
        if found is None and fetch_history:
            self._download(commit_id, self.state.have(), deltas=self.deltas)
            found = self.store.manifest_of(commit_id)
        if found is None:
            parents = _api_get(self.client, f"commits/{quote(commit_id)}").get("parent_ids") or []
            self._download(commit_id, [p for p in parents if is_id(p)], deltas=False)
            found = self.store.manifest_of(commit_id)
        if found is None:
            raise integrity_error(f"the hub's pack does not hold commit {commit_id} and its snapshot")
        return found

    def reader(self, needed: set[str], head: str, stage: Path) -> Callable[[str], bytes]:
        """Return a function giving the bytes of each blob in *needed*: packs, unchanged files, else a download."""
        staged, missing = gather_sources(self.root, self.state, self.store, needed, stage)
        if missing:
            self.client.out.note(f"{plural(len(missing), 'blob')} not held locally; downloading {short(head)} in full")
            self._download(head, [], deltas=self.deltas, folder=stage)
            lacking = missing - set(self.store.blobs)
            if lacking:
                raise integrity_error(f"the hub's pack lacks blob {sorted(lacking)[0]}")

        def read(oid: str) -> bytes:
            if oid in staged:
                content = staged[oid].read_bytes()
                if blob_id(content) != oid:
                    raise integrity_error(f"staged blob {oid} changed")
                return content
            return self.store.read(oid)

        return read


def _is_text(*contents: bytes | None) -> bool:
    for content in contents:
        if content is None:
            continue
        if b"\0" in content:
            return False
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _section(content: bytes | None) -> bytes:
    if not content:
        return b""
    return content if content.endswith(b"\n") else content + b"\n"


def marked(ours: bytes | None, theirs: bytes | None, ours_label: str, theirs_label: str) -> bytes:
    """Return one file holding both versions between conflict markers (None: that side deleted the file)."""
    ours_label += ": deleted" if ours is None else ""
    theirs_label += ": deleted" if theirs is None else ""
    return b"".join(
        [
            f"<<<<<<< ours ({ours_label})\n".encode(),
            _section(ours),
            b"=======\n",
            _section(theirs),
            f">>>>>>> theirs ({theirs_label})\n".encode(),
        ]
    )


def _sync_regions(base: list[bytes], ours: list[bytes], theirs: list[bytes]) -> list[tuple[int, ...]]:
    """Return the runs of lines equal in all three versions, as (base, ours, theirs) start/end indexes.

    The last region is an empty one at the ends of the three (so whatever
    follows the last common run is still visited).
    """
    ours_blocks = SequenceMatcher(None, base, ours, autojunk=False).get_matching_blocks()
    theirs_blocks = SequenceMatcher(None, base, theirs, autojunk=False).get_matching_blocks()
    regions: list[tuple[int, ...]] = []
    i = j = 0
    while i < len(ours_blocks) and j < len(theirs_blocks):
        o_base, o_start, o_len = ours_blocks[i]
        t_base, t_start, t_len = theirs_blocks[j]
        start, end = max(o_base, t_base), min(o_base + o_len, t_base + t_len)
        if start < end:
            o, t = o_start + start - o_base, t_start + start - t_base
            regions.append((start, end, o, o + end - start, t, t + end - start))
        if o_base + o_len < t_base + t_len:
            i += 1
        else:
            j += 1
    regions.append((len(base), len(base), len(ours), len(ours), len(theirs), len(theirs)))
    return regions


def merge_text(base: bytes, ours: bytes, theirs: bytes, ours_label: str, theirs_label: str) -> tuple[bytes, int]:
    """Merge three versions of a text line by line (diff3); return (the text, how many sections conflict).

    A run of lines changed on one side only takes that side; the same change
    on both sides merges; different changes to the same lines (or next to
    each other) are written between ``<<<<<<< ours (LABEL)``, ``=======`` and
    ``>>>>>>> theirs (LABEL)`` lines.
    """
    b, o, t = (text.splitlines(keepends=True) for text in (base, ours, theirs))
    out: list[bytes] = []
    hunks = 0
    ib = io = it = 0
    for b_start, b_end, o_start, o_end, t_start, t_end in _sync_regions(b, o, t):
        o_part, t_part, b_part = o[io:o_start], t[it:t_start], b[ib:b_start]
        if o_part == t_part:
            out.extend(o_part)
        elif o_part == b_part:
            out.extend(t_part)
        elif t_part == b_part:
            out.extend(o_part)
        else:
            hunks += 1
            out.append(f"<<<<<<< ours ({ours_label})\n".encode())
            out.append(_section(b"".join(o_part)))
            out.append(b"=======\n")
            out.append(_section(b"".join(t_part)))
            out.append(f">>>>>>> theirs ({theirs_label})\n".encode())
        out.extend(o[o_start:o_end])
        ib, io, it = b_end, o_end, t_end
    return b"".join(out), hunks


def has_markers(content: bytes) -> bool:
    """Return True when a line of *content* starts with ``<<<<<<< `` or ``>>>>>>> ``."""
    return any(line.startswith(MARKERS) for line in content.splitlines())


def _side_name(path: str, side: str, taken: set[str], root: Path) -> str:
    """Return ``PATH.SIDE`` (or ``PATH.SIDE.1``, … when that name is taken)."""
    name, n = f"{path}.{side}", 0
    while name in taken or os.path.lexists(root / name):
        n += 1
        name = f"{path}.{side}.{n}"
    taken.add(name)
    return name


def merge(
    directory: str | Path,
    branch: str,
    *,
    token: str | None = None,
    message: str | None = None,
    author: str | None = None,
    out: Feedback | None = None,
    phases: PhaseHook | None = None,
) -> MergeResult:
    """Merge *branch* of the folder's repository into the folder (see the module docstring).

    Raises ClientError: exit 4 when a merge is already pending, the folder's
    branch moved on the hub (pull first) or local changes are in the way; exit 5
    when *branch* does not exist. Conflicts are not errors: the result lists them
    (``result.conflicts``) and the folder holds them marked.
    """
    started = time.monotonic()
    timer = Phases(phases)
    out = out or Silent()
    root, state = load_state(directory)
    refuse_during_merge(root, "merge")
    if branch == state.branch:
        raise ClientError(f"{root} is on {branch} already; name another branch to merge into it", EXIT_USAGE)
    if state.head is None:
        raise ClientError(
            f"{state.branch} has no commits yet, so there is nothing to merge into; clone --branch {branch} instead",
            EXIT_CONFLICT,
        )
    client = HubClient(state.url, token, out=out)
    try:
        fetched = fetch_into(root, state, client, phases=timer)
        if fetched.remote_head != state.head:
            raise ClientError(
                f"{state.branch} moved on the hub (here {short(state.head)}, there {short(fetched.remote_head)}); "
                "pull, then merge again",
                EXIT_CONFLICT,
            )
        with timer("refs"):
            refs = client.refs()
        theirs = refs["branch_heads"].get(branch)
        if theirs is None:
            raise ClientError(f"{client.url} has no branch {branch!r}", EXIT_NOT_FOUND)
        ours = state.head
        with timer("base"):
            base = merge_base(client, ours, theirs) if theirs != ours else theirs
        result = MergeResult(state.branch, branch, ours, theirs, base)
        if base == theirs:
            result.up_to_date = True
        else:
            _merge_trees(root, state, client, result, refs=refs, message=message, author=author, timer=timer)
    finally:
        client.close()
    result.seconds, result.phases = time.monotonic() - started, timer.seconds
    return result


def _merge_trees(
    root: Path,
    state: State,
    client: HubClient,
    result: MergeResult,
    *,
    refs: Mapping[str, Any],
    message: str | None,
    author: str | None,
    timer: Phases,
) -> None:
    """Merge the trees of ``result.ours`` and ``result.theirs``, write the folder and record the merge."""
    history = _History(root, state, client, SNAPSHOT_DELTA in capabilities_of(refs), timer)
    with timer("fetch"):
        ours_m = dict(state.manifest)
        theirs_m = history.manifest(result.theirs, fetch_history=True)
        base_m = history.manifest(result.base, fetch_history=False) if result.base else {}
    with timer("plan"):
        outcome = three_way(base_m, ours_m, theirs_m)
        kinds = {c["path"]: c["kind"] for c in outcome.conflicts}
        split = {p for p, k in kinds.items() if k == FILE_DIRECTORY}  # a file where the other side has a folder
        target = {p: oid for p, oid in outcome.merged.items() if p not in split}
        held = {p: ours_m[p] for p in kinds if p not in split and p in ours_m}  # conflicts: written below
        update = plan_update(root, ours_m, {**target, **held})
        problems = list(update.conflicts)
        for path in sorted(set(kinds) - split):
            if local_oid(root, path) != ours_m.get(path):
                problems.append(f"{path} ({'modified' if path in ours_m else 'untracked'} here, conflicting)")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ClientError(
            f"merge would overwrite local changes: {shown}. Push or undo them, then merge again", EXIT_CONFLICT
        )

    record = MergeRecord(
        url=state.url,
        branch=state.branch,
        theirs_branch=result.theirs_branch,
        ours=result.ours,
        theirs=result.theirs,
        base=result.base,
        message=message or f"Merge branch '{result.theirs_branch}' into {state.branch}",
        author=author or default_author(client),
    )
    stage = root / STATE_DIR / TMP_DIR / uuid.uuid4().hex
    try:
        needed = set(update.writes.values()) | {theirs_m[p] for p in kinds if p in theirs_m}
        read = history.reader(needed, result.theirs, stage)
        taken = set(ours_m) | set(theirs_m) | set(target)
        with timer("write"):
            # Our side of every file about to change is kept first, so --abort can put it back.
            changing = set(update.writes) | set(update.deletes) | set(kinds)
            backups = root / STATE_DIR / BACKUP_DIR
            backups.mkdir(parents=True, exist_ok=True)
            for path in sorted(changing & set(ours_m)):
                copy = backups / hex_of(ours_m[path])
                if not (root / path).is_file():
                    record.absent.append(path)  # deleted here (the plan checked): --abort deletes it again
                elif not copy.exists():
                    shutil.copyfile(root / path, copy)
            record.conflicts = [
                _conflict_plan(path, kind, ours_m, theirs_m, outcome.merged, result, taken, root, read)
                for path, kind in sorted(kinds.items())
            ]
            record.touched = sorted(changing | {f for c in record.conflicts for f in c.files})
            texts = _marked_texts(record.conflicts, base_m, ours_m, theirs_m, result, history, stage, read)
            if not outcome.conflicts:
                record.commit = new_commit(
                    outcome.merged,
                    [result.ours, result.theirs],
                    branch=state.branch,
                    message=record.message,
                    author=record.author,
                )
            record.save(root)  # before the tree changes: an interrupted merge can still be aborted
            for path in update.deletes:
                remove_file(root, path)
            for path, oid in update.writes.items():
                write_file(root, path, read(oid))
            for conflict in record.conflicts:
                if conflict.how == MARKED:
                    write_file(root, conflict.path, texts[conflict.path])
                else:
                    _write_side_file(root, conflict, ours_m, theirs_m, read)
    finally:
        remove_tree(stage)
        with contextlib.suppress(OSError):
            (root / STATE_DIR / TMP_DIR).rmdir()
    result.conflicts = record.conflicts
    result.commit_id = record.commit["commit_id"] if record.commit else None
    result.written, result.deleted = len(update.writes), len(update.deletes)


def _conflict_plan(
    path: str,
    kind: str,
    ours_m: Mapping[str, str],
    theirs_m: Mapping[str, str],
    merged: Mapping[str, str],
    result: MergeResult,
    taken: set[str],
    root: Path,
    read: Callable[[str], bytes],
) -> Conflict:
    """Decide how conflict *path* is written: markers for text, a side file for binary content and folders."""
    theirs_label = f"{result.theirs_branch}"
    if kind == FILE_DIRECTORY:
        side = "ours" if ours_m.get(path) == merged[path] else "theirs"
        name = _side_name(path, side, taken, root)
        owner = "this branch" if side == "ours" else result.theirs_branch
        return Conflict(
            path,
            kind,
            SIDE_FILES,
            [name],
            f"{owner} has a file {path} where the other side has a folder: the file is now {name}; "
            "rename it (or delete it)",
        )
    ours_oid, theirs_oid = ours_m.get(path), theirs_m.get(path)
    ours = (root / path).read_bytes() if ours_oid is not None else None
    theirs = read(theirs_oid) if theirs_oid is not None else None
    if _is_text(ours, theirs):
        what = {
            BOTH_MODIFIED: "changed on both sides",
            BOTH_ADDED: "added on both sides",
            MODIFIED_DELETED: f"changed here, deleted on {theirs_label}",
            DELETED_MODIFIED: f"deleted here, changed on {theirs_label}",
        }[kind]
        return Conflict(
            path,
            kind,
            MARKED,
            [path],
            f"{what}: edit {path} to the result you want and remove the markers"
            + (", or delete it" if ours is None or theirs is None else ""),
        )
    if theirs is None:  # changed here, deleted there: ours moves aside
        name = _side_name(path, "ours", taken, root)
        return Conflict(
            path,
            kind,
            SIDE_FILES,
            [name],
            f"changed here, deleted on {theirs_label}: our version is {name}; rename it to {path} to keep it, "
            "or delete it",
        )
    name = _side_name(path, "theirs", taken, root)
    if ours is None:
        hint = f"deleted here, changed on {theirs_label}: their version is {name}; rename it to {path} to keep it, "
        hint += "or delete it"
    else:
        hint = f"binary, {'changed' if kind == BOTH_MODIFIED else 'added'} on both sides: ours is {path}, "
        hint += f"theirs is {name}; move {name} over {path} to take theirs, or delete it to keep ours"
    return Conflict(path, kind, SIDE_FILES, [name], hint)


def _marked_texts(
    conflicts: list[Conflict],
    base_m: Mapping[str, str],
    ours_m: Mapping[str, str],
    theirs_m: Mapping[str, str],
    result: MergeResult,
    history: _History,
    stage: Path,
    read: Callable[[str], bytes],
) -> dict[str, bytes]:
    """Return the content of each text conflict: merged line by line, conflicting sections marked.

    A file deleted on one side, or added on both, is one marked section; the
    hint of a file changed on both sides says how many sections conflict.
    """
    texts: dict[str, bytes] = {}
    marked_ones = [c for c in conflicts if c.how == MARKED]
    base_oids = {base_m[c.path] for c in marked_ones if c.kind == BOTH_MODIFIED}
    read_base = history.reader(base_oids, result.base, stage) if base_oids and result.base else read
    backups = history.root / STATE_DIR / BACKUP_DIR
    for conflict in marked_ones:
        path = conflict.path
        ours = (backups / hex_of(ours_m[path])).read_bytes() if path in ours_m else None
        theirs = read(theirs_m[path]) if path in theirs_m else None
        if ours is None or theirs is None:
            texts[path] = marked(ours, theirs, result.branch, result.theirs_branch)
            continue
        base = read_base(base_m[path]) if conflict.kind == BOTH_MODIFIED else b""
        texts[path], hunks = merge_text(base, ours, theirs, result.branch, result.theirs_branch)
        if conflict.kind == BOTH_MODIFIED and hunks == 0:
            conflict.open = False
            conflict.hint = (
                "changed on both sides in different lines: merged line by line with no conflicting section; check it"
            )
        elif conflict.kind == BOTH_MODIFIED:
            conflict.hint = (
                f"changed on both sides: {plural(hunks, 'conflicting section')} marked in {path}; edit each to the "
                "result you want and remove the markers"
            )
    return texts


def _write_side_file(
    root: Path,
    conflict: Conflict,
    ours_m: Mapping[str, str],
    theirs_m: Mapping[str, str],
    read: Callable[[str], bytes],
) -> None:
    path = conflict.path
    backups = root / STATE_DIR / BACKUP_DIR
    ours = (backups / hex_of(ours_m[path])).read_bytes() if path in ours_m else None
    theirs = read(theirs_m[path]) if path in theirs_m else None
    (side,) = conflict.files
    if side.startswith(f"{path}.ours"):  # ours moves aside: theirs deleted it, or holds a folder here
        if ours is not None:
            write_file(root, side, ours)
        target = root / path
        if target.is_file() and not target.is_symlink():
            remove_file(root, path)
    elif theirs is not None:
        write_file(root, side, theirs)


# --- finishing: push the merge commit ----------------------------------------------------------


def unresolved(root: Path, record: MergeRecord) -> list[str]:
    """Return what still blocks the merge commit: files holding markers, side files still present."""
    left: list[str] = []
    for conflict in record.conflicts:
        if conflict.how == MARKED:
            target = root / conflict.path
            with contextlib.suppress(OSError):
                if target.is_file() and not target.is_symlink() and has_markers(target.read_bytes()):
                    left.append(f"{conflict.path} still holds conflict markers")
        else:
            left.extend(f"{name} is still there" for name in conflict.files if os.path.lexists(root / name))
    return left


def push_merge(
    directory: str | Path,
    url: str | None = None,
    *,
    token: str | None = None,
    branch: str | None = None,
    force: bool = False,
    message: str | None = None,
    author: str | None = None,
    out: Feedback | None = None,
    phases: PhaseHook | None = None,
    **_ignored: Any,
) -> PushResult:
    """Commit the folder's tree as the merge commit (two parents) and push it; forget the merge on success.

    The clean merge's own commit is pushed as made when the tree, message and
    author are unchanged; otherwise a new commit with the same parents. Raises
    ClientError: exit 4 while conflicts are unresolved or when the branch moved
    on the hub since the merge started (unless *force*), exit 2 for another URL
    or branch than the merge's.
    """
    started = time.monotonic()
    timer = Phases(phases)
    root, state = load_state(directory)
    record = MergeRecord.load(root)
    if record is None:
        raise ClientError(f"{root} has no merge in progress", EXIT_ERROR)
    if (url and normalize_url(url) != record.url) or (branch and branch != record.branch):
        raise ClientError(
            f"{root} is merging {record.theirs_branch} into {record.branch} of {record.url}: push there, "
            "or run `musehub merge --abort` first",
            EXIT_USAGE,
        )
    if state.head != record.ours or state.url != record.url or state.branch != record.branch:
        raise ClientError(
            f"{root} is no longer at {short(record.ours)} where the merge started; run `musehub merge --abort`",
            EXIT_CONFLICT,
        )
    out = out or Silent()
    with timer("scan"):
        scan = scan_folder(root)
    manifest = scan.manifest
    if scan.skipped:
        out.note(skipped_warning(root, scan.skipped))
    left = unresolved(root, record)
    if left:
        shown = "; ".join(left[:5]) + (f"; and {len(left) - 5} more" if len(left) > 5 else "")
        raise ClientError(
            f"the merge of {record.theirs_branch} is not resolved: {shown}. Fix them and push again, "
            "or run `musehub merge --abort`",
            EXIT_CONFLICT,
        )
    client = HubClient(record.url, token, out=out)
    try:
        with timer("refs"):
            refs = client.refs()
        remote = refs["branch_heads"].get(record.branch)
        if remote != record.ours and not force:
            raise ClientError(
                f"{record.branch} moved on the hub since the merge started (now {short(remote)}): run "
                "`musehub merge --abort`, pull, and merge again",
                EXIT_CONFLICT,
            )
        commit = record.commit
        if commit is None or commit["snapshot_id"] != compute_snapshot_id(manifest) or message or author:
            commit = new_commit(
                manifest,
                [record.ours, record.theirs],
                branch=record.branch,
                message=message or record.message,
                author=author or record.author,
            )
        # The folder's head is the first parent: the hub holds its tree, and the snapshot may be a delta against it.
        plan = plan_push(client, root, commit, manifest, parent=state, phases=timer)
        sent = push_commit(client, plan, force=force, earlier_commits=state.commits, phases=timer)
        with timer("state"):
            MergeRecord.forget(root)
    finally:
        client.close()
    return PushResult(
        url=record.url,
        branch=record.branch,
        head=commit["commit_id"],
        parent=record.ours,
        pushed=True,
        files=len(manifest),
        blobs=len(plan.blob_paths),
        pack_bytes=sent.pack_bytes,
        uploaded=sent.uploaded,
        delta=plan.delta,
        seconds=time.monotonic() - started,
        phases=timer.seconds,
    )


# --- abort ------------------------------------------------------------------------------------


@dataclass
class AbortResult:
    branch: str
    theirs_branch: str
    head: str
    restored: int = 0
    removed: int = 0


def abort(directory: str | Path = ".") -> AbortResult:
    """Give up the pending merge: every path it touched goes back to the folder's head, side files go.

    Edits made to those files since the merge are lost (as with ``git merge --abort``).
    """
    root, state = load_state(directory)
    record = MergeRecord.load(root)
    if record is None:
        raise ClientError(f"{root} has no merge in progress; nothing to abort", EXIT_ERROR)
    result = AbortResult(record.branch, record.theirs_branch, record.ours)
    backups = root / STATE_DIR / BACKUP_DIR
    ours_m = state.manifest
    for path in sorted((set(record.touched) - set(ours_m)) | set(record.absent)):
        if os.path.lexists(root / path):
            remove_file(root, path)
            result.removed += 1
    for path in sorted(set(record.touched) & set(ours_m) - set(record.absent)):
        if local_oid(root, path) == ours_m[path]:
            continue
        copy = backups / hex_of(ours_m[path])
        content = copy.read_bytes() if copy.is_file() else None
        if content is None or blob_id(content) != ours_m[path]:
            raise ClientError(
                f"cannot restore {path}: its saved copy in {backups} is missing or damaged; "
                f"clone again, or delete {MergeRecord.path(root)} to forget the merge as the files are",
                EXIT_ERROR,
            )
        write_file(root, path, content)
        result.restored += 1
    MergeRecord.forget(root)
    return result
