"""The workloads, timed phase by phase with the reference client's own functions (``wire.client``).

The client runs in this process, so each phase is timed on its own; the
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
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.hub import StatsLog
from wire import client as wc

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


def _client(url: str, token: str) -> wc.HubClient:
    return wc.HubClient(url, token, out=wc.Output(quiet=True))


# --- push ------------------------------------------------------------------------------------------


def muse_push(
    rec: Recorder, workload: str, root: Path, url: str, token: str, message: str, *, prefix: str = ""
) -> dict[str, Any]:
    """Push the folder *root* to *url* like ``wire.client push``, recording each phase (named *prefix* + phase)."""
    log = rec.log
    client = _client(url, token)
    total, pack, upload, unpack = Timer(log), Timer(log), Timer(log), Timer(log)
    try:
        with total():
            state = wc.State.load(root)
            try:
                refs = client.refs()
            except wc.ClientError as exc:
                if exc.exit_code != wc.EXIT_NOT_FOUND:
                    raise
                refs = {"branch_heads": {}}
            tracks = state is not None and state.url == client.url
            branch = (state.branch if tracks and state else None) or refs.get("default_branch") or "main"
            parent = state.head if tracks and state else refs["branch_heads"].get(branch)
            scan_started = time.perf_counter()
            manifest = wc.scan_tree(root)
            scan_seconds = time.perf_counter() - scan_started
            commit, snapshot = wc.make_commit(manifest, parent, branch=branch, message=message, author=AUTHOR)
            known = state.manifest.values() if tracks and state and parent == state.head else ()
            blob_paths = wc.missing_blob_paths(client, manifest, known)
            with tempfile.TemporaryFile(prefix="bench-push-", suffix=".mpack") as handle:
                with pack():
                    key, size = wc.build_push_pack(
                        handle, root, commit=commit, snapshot=snapshot, blob_paths=blob_paths, branch=branch
                    )
                handle.seek(0)
                with upload():
                    client.upload(handle, key, size)
            with unpack():
                answer = client.push(
                    mpack_key=key,
                    branch=branch,
                    head_commit_id=commit["commit_id"],
                    force=False,
                    commits_count=1,
                    blobs_count=len(blob_paths),
                )
            if answer.get("head_commit_id") != commit["commit_id"]:
                raise RuntimeError(f"push did not move {branch}: {answer}")
            known = state.commits if tracks and state else []
            wc.State(
                url=client.url,
                branch=branch,
                head=commit["commit_id"],
                manifest=manifest,
                commits=[*known, commit["commit_id"]],
            ).save(root)
    finally:
        client.close()
    measures = {
        "pack": Measure(workload, f"{prefix}client pack (scan+hash+build)", scan_seconds + pack.seconds, server=False),
        "upload": Measure(workload, f"{prefix}upload (slot + PUT)", upload.seconds, requests=upload.requests()),
        "unpack": Measure(workload, f"{prefix}server unpack (mpack/push)", unpack.seconds, requests=unpack.requests()),
    }
    for measure in measures.values():
        rec.add(measure)
    return {
        "measures": measures,
        "total": total,
        "upload_unpack": upload.seconds + unpack.seconds,
        "upload_unpack_requests": upload.requests() + unpack.requests(),
        "blobs": len(blob_paths),
        "pack_bytes": size,
        "head": commit["commit_id"],
    }


# --- clone and fetch -------------------------------------------------------------------------------


def _download(client: wc.HubClient, answer: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    size = answer.get("size") if isinstance(answer.get("size"), int) else None
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".download-", suffix=".part", delete=False)  # noqa: SIM115
    with handle:
        client.download(answer["mpack_url"], handle, size)
    return Path(handle.name)


def _verify(part: Path, answer: dict[str, Any], folder: Path) -> tuple[Path, wc.PackContents]:
    size = answer.get("size") if isinstance(answer.get("size"), int) else None
    contents = wc.verify_pack(part, mpack_id=answer.get("mpack_id"), size=size)
    final = folder / f"{wc.hex_of(contents.digest)}.mpack"
    os.replace(part, final)
    return final, contents


def muse_clone(rec: Recorder, workload: str, url: str, token: str, root: Path, *, label: str = "") -> dict[str, Any]:
    """Clone *url* into the new folder *root* like ``wire.client clone``, recording each phase."""
    log = rec.log
    client = _client(url, token)
    total, call, download, verify, write = Timer(log), Timer(log), Timer(log), Timer(log), Timer(log)
    packs = root / wc.STATE_DIR / wc.PACKS_DIR
    try:
        with total():
            refs = client.refs()
            branch = refs.get("default_branch") or "main"
            head = refs["branch_heads"][branch]
            root.mkdir(parents=True, exist_ok=False)
            with call():
                answer = client.fetch([head], [])
            with download():
                part = _download(client, answer, packs)
            with verify():
                final, contents = _verify(part, answer, packs)
            with write():
                store = wc.PackStore()
                store.add(final, contents)
                manifest = store.manifest_of(head)
                if manifest is None:
                    raise RuntimeError("the clone pack lacks the head commit")
                files = wc.checkout_manifest(manifest, client.out)
                with open(final, "rb") as handle:
                    for relative, oid in sorted(files.items()):
                        wc.write_file(root, relative, wc.read_blob(handle, store.blobs[oid][1]))
                wc.State(
                    url=client.url,
                    branch=branch,
                    head=head,
                    manifest=manifest,
                    commits=[c["commit_id"] for c in contents.commits],
                ).save(root)
    finally:
        client.close()
    suffix = f" {label}" if label else ""
    rec.add(Measure(workload, f"fetch call (mpack/fetch){suffix}", call.seconds, requests=call.requests()))
    rec.add(Measure(workload, f"download{suffix}", download.seconds, server=False))
    rec.add(Measure(workload, f"verify{suffix}", verify.seconds, server=False))
    rec.add(Measure(workload, f"write files{suffix}", write.seconds, server=False))
    return {"total": total, "files": len(manifest), "pack_bytes": contents.size, "blobs": len(contents.blobs)}


def muse_fetch(rec: Recorder, workload: str, root: Path, token: str) -> dict[str, Any]:
    """``wire.client fetch`` in *root*, recording each phase."""
    log = rec.log
    state = wc.State.load(root)
    assert state is not None
    client = _client(state.url, token)
    total, call, download, verify = Timer(log), Timer(log), Timer(log), Timer(log)
    packs = root / wc.STATE_DIR / wc.PACKS_DIR
    try:
        with total():
            remote = client.refs()["branch_heads"][state.branch]
            with call():
                answer = client.fetch([remote], state.have())
            with download():
                part = _download(client, answer, packs)
            with verify():
                _final, contents = _verify(part, answer, packs)
                state.commits = [*state.commits, *(c["commit_id"] for c in contents.commits)]
                state.fetched_head = remote
                state.save(root)
    finally:
        client.close()
    rec.add(Measure(workload, "fetch call (mpack/fetch)", call.seconds, requests=call.requests()))
    rec.add(Measure(workload, "download", download.seconds, server=False))
    rec.add(Measure(workload, "verify + state", verify.seconds, server=False))
    return {"total": total, "blobs": len(contents.blobs), "pack_bytes": contents.size}


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
                oid = wc.blob_id(content)
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
