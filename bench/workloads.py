"""The workloads, timed phase by phase through the reference client's operations (``musehub_client.operations``).

The client runs in this process and calls the benchmark's phase hook around
each of its phases (:class:`PhaseTimers`), so each phase is timed on its own; the
server side of each phase (storage requests, bytes read from storage, database
queries, peak memory) comes from the lines bench.server_stats wrote for the
requests made during that phase.

- W1 push: scan + hash the tree and build the mpack ("client pack"), ask for an
  upload slot and PUT the pack ("upload"), the ``mpack/push`` call ("server
  unpack"); git: ``git add -A`` + ``git commit``, then ``git push``.
- W2 clone: ``mpack/fetch`` ("fetch call"; with the ``pack-stream`` capability its
  reply is the pack, so this phase holds the transfer), GET of the pack ("download", none when streamed),
  verify every blob, snapshot and commit id ("verify"), write the files and
  state ("write"); git: ``git clone``.
- W3: one commit changing 10 files is pushed, then fetched into the W2 clone
  (``fetch`` command: fetch call, download, verify + state); git: commit, push,
  ``git fetch``.
- W4: a repository built from many small pushes (3 files of 6-24 KiB each,
  above the 4 KiB content cache, so every blob is read from packs), cloned
  before and after ``manage.py musehub_repack``.
- W5: a long history (a seeded tree, then commits each rewriting a few files)
  built with the core the way ``git fast-import`` builds one (:func:`muse_history`),
  pushed in a few multi-commit mpacks whose snapshots are deltas
  (:func:`history_pushes`), then cloned with the reference client.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bench import data
from bench.hub import StatsLog
from musehub_client import operations
from musehub_client.http import EXIT_NOT_FOUND, ClientError, HubClient, capabilities_of
from musehub_core.ids import blob_id
from musehub_core.manifests import ManifestDelta, Tree, snapshot_dict
from musehub_core.mpack import MPackWriter, encode_blob
from musehub_core.protocol import SNAPSHOT_DELTA
from musehub_core.records import CommitDict, commit_record

AUTHOR = "bench"


@dataclass
class Measure:
    """One phase of one run."""

    workload: str
    phase: str
    seconds: float | None
    git_seconds: float | None = None
    requests: list[dict] = field(default_factory=list)
    server: bool = True  # False: no server requests belong to this phase (client-only, or not the hub's)

    def server_stats(self) -> dict[str, float]:
        reqs = self.requests
        return {
            "gets": sum(r["s3"].get("GET", 0) for r in reqs),
            "s3_requests": sum(sum(r["s3"].values()) for r in reqs),
            "get_bytes": sum(r["s3_get_bytes"] for r in reqs),
            "db_queries": sum(r["db_queries"] for r in reqs),
            "db_statements": sum(r.get("db_statements", r["db_queries"]) for r in reqs),
            "peak_rss_mb": max((r["peak_rss_kb"] for r in reqs), default=0) / 1024,
            "rss_growth_mb": max((r["peak_rss_kb"] - r.get("rss_start_kb", r["peak_rss_kb"]) for r in reqs), default=0)
            / 1024,
            "server_seconds": sum(r["seconds"] for r in reqs),
            "requests": len(reqs),
        }


@dataclass
class Quantity:
    """One figure of one run that is not a phase's time (bytes, memory, a rebuild time), MuseHub beside git.

    *unit* is ``s``, ``ms``, ``bytes`` or ``MB``. A target is either *max_ratio*
    (MuseHub / git at most that) or *below* (the MuseHub value under that).
    """

    workload: str
    name: str
    muse: float | None
    git: float | None = None
    unit: str = "s"
    max_ratio: float | None = None
    below: float | None = None


class Recorder:
    """Collects Measures and Quantities; :meth:`requests` returns the server lines written between two marks."""

    def __init__(self, log: StatsLog) -> None:
        self.log = log
        self.measures: list[Measure] = []
        self.quantities: list[Quantity] = []

    def add(self, measure: Measure) -> Measure:
        self.measures.append(measure)
        return measure

    def quantity(self, quantity: Quantity) -> Quantity:
        self.quantities.append(quantity)
        return quantity

    def requests(self, start: int, end: int) -> list[dict]:
        return self.log.between(start, end)


class Timer:
    """perf_counter + stats-log marks around a block."""

    def __init__(self, log: StatsLog) -> None:
        self.log = log
        self.seconds = 0.0
        self.start_mark = self.end_mark = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Timer]:
        self.start_mark = self.log.mark()
        started = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds = time.perf_counter() - started
            self.end_mark = self.log.mark()

    def requests(self) -> list[dict]:
        return self.log.between(self.start_mark, self.end_mark)


def _client(url: str, token: str) -> HubClient:
    return HubClient(url, token)


class PhaseTimers:
    """The phase hook handed to ``musehub_client.operations``: a :class:`Timer` around every phase it runs.

    A phase that runs more than once (a retried download) adds up its seconds and requests.
    """

    def __init__(self, log: StatsLog) -> None:
        self.log = log
        self.timers: dict[str, list[Timer]] = {}

    def __call__(self, name: str) -> contextlib.AbstractContextManager[Timer]:
        timer = Timer(self.log)
        self.timers.setdefault(name, []).append(timer)
        return timer()

    def seconds(self, *names: str) -> float:
        return sum(t.seconds for name in names for t in self.timers.get(name, []))

    def requests(self, *names: str) -> list[dict]:
        return [r for name in names for t in self.timers.get(name, []) for r in t.requests()]


# --- push ------------------------------------------------------------------------------------------


def muse_push(
    rec: Recorder, workload: str, root: Path, url: str, token: str, message: str, *, prefix: str = ""
) -> dict[str, Any]:
    """Push the folder *root* to *url* with ``operations.push``, recording each phase (named *prefix* + phase)."""
    total, phases = Timer(rec.log), PhaseTimers(rec.log)
    with total():
        result = operations.push(root, url, token=token, message=message, author=AUTHOR, phases=phases)
    if not result.pushed:
        raise RuntimeError(f"nothing to push from {root}")
    measures = {
        "pack": Measure(
            workload, f"{prefix}client pack (scan+hash+build)", phases.seconds("scan", "pack"), server=False
        ),
        "upload": Measure(
            workload, f"{prefix}upload (slot + PUT)", phases.seconds("upload"), requests=phases.requests("upload")
        ),
        "unpack": Measure(
            workload,
            f"{prefix}server unpack (mpack/push)",
            phases.seconds("push"),
            requests=phases.requests("push"),
        ),
    }
    for measure in measures.values():
        rec.add(measure)
    return {
        "measures": measures,
        "total": total,
        "upload_unpack": phases.seconds("upload", "push"),
        "upload_unpack_requests": phases.requests("upload", "push"),
        "blobs": result.blobs,
        "pack_bytes": result.pack_bytes,
        "head": result.head,
    }


# --- clone and fetch -------------------------------------------------------------------------------


def muse_clone(rec: Recorder, workload: str, url: str, token: str, root: Path, *, label: str = "") -> dict[str, Any]:
    """Clone *url* into the new folder *root* with ``operations.clone``, recording each phase."""
    total, phases = Timer(rec.log), PhaseTimers(rec.log)
    with total():
        result = operations.clone(url, root, token=token, phases=phases)
    if result.head is None:
        raise RuntimeError(f"{url} is empty")
    suffix = f" {label}" if label else ""
    rec.add(
        Measure(
            workload, f"fetch call (mpack/fetch){suffix}", phases.seconds("fetch"), requests=phases.requests("fetch")
        )
    )
    rec.add(Measure(workload, f"download{suffix}", phases.seconds("download"), server=False))
    rec.add(Measure(workload, f"verify{suffix}", phases.seconds("verify"), server=False))
    rec.add(Measure(workload, f"write files{suffix}", phases.seconds("write"), server=False))
    return {"total": total, "files": result.files, "pack_bytes": result.pack_bytes, "blobs": result.blobs}


def muse_fetch(rec: Recorder, workload: str, root: Path, token: str) -> dict[str, Any]:
    """``operations.fetch`` in *root*, recording each phase."""
    total, phases = Timer(rec.log), PhaseTimers(rec.log)
    with total():
        result = operations.fetch(root, token=token, phases=phases)
    rec.add(Measure(workload, "fetch call (mpack/fetch)", phases.seconds("fetch"), requests=phases.requests("fetch")))
    rec.add(Measure(workload, "download", phases.seconds("download"), server=False))
    rec.add(Measure(workload, "verify + state", phases.seconds("verify", "state"), server=False))
    return {"total": total, "blobs": result.blobs, "pack_bytes": result.size}


# --- W4: many small pushes ----------------------------------------------------------------------------


def small_pushes(url: str, token: str, commits: list[list[tuple[str, bytes]]]) -> tuple[float, str]:
    """Push each entry of *commits* (files added or changed) as its own commit and mpack; return (seconds, head).

    Speaks the mpack protocol through HubClient directly (no working folder): the
    same calls the client makes (``push_pack``: inline when the hub lists
    ``push-inline``, else upload + push), minus scanning a tree.
    """
    client = _client(url, token)
    manifest: dict[str, str] = {}
    head: str | None = None
    started = time.perf_counter()
    try:
        for files in commits:
            blobs: dict[str, bytes] = {}
            for relative, content in files:
                oid = blob_id(content)
                manifest[relative] = oid
                blobs[oid] = content
            pack, key, commit = data.one_commit_pack(manifest, blobs, head, "small push", author=AUTHOR)
            with tempfile.TemporaryFile() as handle:
                handle.write(pack)
                client.push_pack(
                    handle,
                    len(pack),
                    mpack_key=key,
                    branch="main",
                    head_commit_id=commit["commit_id"],
                    force=False,
                    commits_count=1,
                    blobs_count=len(blobs),
                )
            if head is None:
                client.refs()  # the first push created the repository: now its capabilities are known
            head = commit["commit_id"]
    finally:
        client.close()
    assert head is not None
    return time.perf_counter() - started, head


# --- W5: a long history -----------------------------------------------------------------------------


@dataclass
class MuseHistory:
    """A :class:`bench.data.History` as MuseHub commits: ids computed, blobs by id."""

    commits: list[CommitDict]  # parents first
    sets: list[dict[str, str]]  # per commit: {path: object id} it writes over its parent's manifest
    blobs: dict[str, bytes]  # every version of every file, by object id

    @property
    def tip_snapshot(self) -> str:
        return self.commits[-1]["snapshot_id"]


def muse_history(history: data.History, *, branch: str = "main") -> MuseHistory:
    """Compute the blob, snapshot and commit ids of *history* (what committing it costs, as ``git fast-import`` does).

    Snapshot ids come from :class:`musehub_core.manifests.Tree`, which edits its
    sorted entries per commit instead of re-sorting the whole tree.
    """
    blobs: dict[str, bytes] = {}

    def store(content: bytes) -> str:
        oid = blob_id(content)
        blobs.setdefault(oid, content)
        return oid

    first = {history.paths[i]: store(content) for i, content in enumerate(history.initial)}
    tree = Tree.of(first)
    sets: list[dict[str, str]] = [first]
    commits: list[CommitDict] = []
    parents: list[str] = []
    for number in range(history.commits):
        if number:
            changes = {history.paths[i]: store(content) for i, content in history.edits[number - 1]}
            tree = tree.apply(ManifestDelta(set=changes))
            sets.append(changes)
        snapshot_id = tree.snapshot_id()
        commit = commit_record(
            parent_ids=parents,
            snapshot_id=snapshot_id,
            branch=branch,
            message=data.history_message(number),
            author=AUTHOR,
            committed_at=datetime.fromtimestamp(data.history_time(number), UTC).isoformat(),
        )
        commits.append(commit)
        parents = [commit["commit_id"]]
    return MuseHistory(commits=commits, sets=sets, blobs=blobs)


def push_bounds(commits: int, pushes: int) -> list[tuple[int, int]]:
    """Split *commits* commits into *pushes* consecutive [start, end) ranges as even as can be."""
    pushes = max(1, min(pushes, commits))
    return [(commits * i // pushes, commits * (i + 1) // pushes) for i in range(pushes)]


def write_history_pack(
    out: IO[bytes],
    history: MuseHistory,
    start: int,
    end: int,
    base: tuple[str, dict[str, str]] | None,
    blob_ids: list[str],
    *,
    branch: str = "main",
) -> tuple[str, int, tuple[str, dict[str, str]]]:
    """Write commits [start, end) of *history* as one mpack to *out*; return (key, size, the last (snapshot id, manifest)).

    Each snapshot is a delta against the one before it (``snapshot_dict`` picks
    the full manifest when that is smaller): the first against *base*, the
    snapshot the repository already holds (None for the first push). *blob_ids*
    are the blobs to send, zstd-compressed where that pays (``encode_blob``).
    """
    chunk = history.commits[start:end]
    snapshots = []
    # The history knows what each commit changed (it only rewrites files), so each delta is written from
    # that, as a client that tracks its changes would; only the first snapshot of a new repository is full.
    manifest = dict(base[1]) if base else {}
    base_id = base[0] if base else None
    for commit, changes in zip(chunk, history.sets[start:end], strict=True):
        snapshot_id = commit["snapshot_id"]
        if snapshot_id == base_id:
            continue  # an unchanged tree: the receiver holds it already
        changed = {path: oid for path, oid in changes.items() if manifest.get(path) != oid}
        manifest.update(changed)
        if base_id is None:
            snapshots.append(snapshot_dict(snapshot_id, manifest, created_at=commit["committed_at"]))
        else:
            snapshots.append(
                {
                    "snapshot_id": snapshot_id,
                    "base": base_id,
                    "set": changed,
                    "delete": [],
                    "created_at": commit["committed_at"],
                }
            )
        base_id = snapshot_id
    assert base_id is not None
    base = (base_id, manifest)
    writer = MPackWriter(out)
    writer.write_commits(chunk)
    writer.write_snapshots(snapshots)
    writer.begin_blobs(len(blob_ids))
    for oid in blob_ids:
        stored, encoding = encode_blob(history.blobs[oid])
        writer.write_blob(oid, stored, encoding)
    key, size = writer.finish({branch: chunk[-1]["commit_id"]})
    return key, size, base


def history_pushes(
    rec: Recorder, workload: str, url: str, token: str, history: MuseHistory, pushes: int, tmp: Path
) -> dict[str, Any]:
    """Push *history* to *url* in *pushes* mpacks (oldest commits first), recording each phase summed over the pushes.

    Per push, as the reference client does for one commit: ``refs`` (the hub
    must list ``snapshot-delta``; before the first push the repository does not
    exist yet, and that push creates it) and ``filter-objects`` for the blobs this
    push's commits add ("negotiate"), build the pack (:func:`write_history_pack`),
    and hand it over with ``push_pack`` (upload slot + PUT, then ``mpack/push``;
    a pack of at most 4 MiB goes inline in ``mpack/push``).
    """
    total, phases = Timer(rec.log), PhaseTimers(rec.log)
    client = _client(url, token)
    base: tuple[str, dict[str, str]] | None = None  # the snapshot of the branch head the hub holds
    held: set[str] = set()  # blobs pushed earlier
    pack_bytes = blobs_sent = 0
    try:
        with total():
            for start, end in push_bounds(len(history.commits), pushes):
                with phases("negotiate"):
                    try:
                        refs = client.refs()
                    except ClientError as exc:  # the first push creates the repository
                        if exc.exit_code != EXIT_NOT_FOUND or base is not None:
                            raise
                    else:
                        if SNAPSHOT_DELTA not in capabilities_of(refs):
                            raise RuntimeError(f"{url}/refs does not list {SNAPSHOT_DELTA}")
                    new_ids = list(
                        dict.fromkeys(oid for changes in history.sets[start:end] for oid in changes.values())
                    )
                    new_ids = [oid for oid in new_ids if oid not in held]
                    missing = set(client.filter_objects(new_ids))
                send = [oid for oid in new_ids if oid in missing]
                with tempfile.TemporaryFile(dir=tmp) as handle:
                    with phases("pack"):
                        key, size, base = write_history_pack(handle, history, start, end, base, send)
                    client.push_pack(
                        handle,
                        size,
                        mpack_key=key,
                        branch="main",
                        head_commit_id=history.commits[end - 1]["commit_id"],
                        force=False,
                        commits_count=end - start,
                        blobs_count=len(send),
                        phases=phases,
                    )
                held.update(new_ids)
                pack_bytes += size
                blobs_sent += len(send)
    finally:
        client.close()
    for name, phase, server in (
        ("negotiate", "push: refs + filter-objects", True),
        ("pack", "push: build packs (deltas + zstd)", False),
        ("upload", "push: upload (slot + PUT)", True),
        ("push", "push: server unpack (mpack/push)", True),
    ):
        rec.add(
            Measure(
                workload, phase, phases.seconds(name), requests=phases.requests(name) if server else [], server=server
            )
        )
    return {"total": total, "pack_bytes": pack_bytes, "blobs": blobs_sent}
