"""The workloads, timed phase by phase through the reference client's operations (``musehub_client.operations``).

The client runs in this process and calls the benchmark's phase hook around
each of its phases (:class:`PhaseTimers`), so each phase is timed on its own; the
server side of each phase (storage requests, bytes read from storage, database
queries, peak memory) comes from the lines bench.server_stats wrote for the
requests made during that phase.

- W1 push: scan + hash the tree and build the mpack ("client pack"), ask for an
  upload slot and PUT the pack ("upload"), the ``mpack/push`` call ("server
  unpack"); git: ``git add -A`` + ``git commit``, then ``git push``.
- W2 clone: ``mpack/fetch`` ("fetch call"), GET of the pack ("download"),
  verify every blob, snapshot and commit id ("verify"), write the files and
  state ("write"); git: ``git clone``.
- W3: one commit changing 10 files is pushed, then fetched into the W2 clone
  (``fetch`` command: fetch call, download, verify + state); git: commit, push,
  ``git fetch``.
- W4: a repository built from many small pushes (3 files of 6-24 KiB each,
  above the 4 KiB content cache, so every blob is read from packs), cloned
  before and after ``manage.py musehub_repack``.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.hub import StatsLog
from musehub_client import operations
from musehub_client.http import HubClient
from musehub_core.ids import blob_id

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


class Recorder:
    """Collects Measures; :meth:`window` captures the server lines written between two marks."""

    def __init__(self, log: StatsLog) -> None:
        self.log = log
        self.measures: list[Measure] = []

    def add(self, measure: Measure) -> Measure:
        self.measures.append(measure)
        return measure

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
    same upload and push calls the client makes, minus scanning a tree.
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
                handle.seek(0)
                client.upload(handle, key, len(pack))
            client.push(
                mpack_key=key,
                branch="main",
                head_commit_id=commit["commit_id"],
                force=False,
                commits_count=1,
                blobs_count=len(blobs),
            )
            head = commit["commit_id"]
    finally:
        client.close()
    assert head is not None
    return time.perf_counter() - started, head
