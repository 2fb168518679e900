"""MuseHub benchmark: push, clone, incremental fetch and many-packs fetch, side by side with git.

Usage (from the repository root)::

    python -m bench.run [--quick] [--runs N] [--out bench/results/FILE.md] [--keep] [--max-minutes M]
    make bench BENCH_ARGS="--quick"

It starts everything it needs on 127.0.0.1 (a PostgreSQL database on the local
cluster at 127.0.0.1:5432, user postgres, trust auth; moto's S3 server;
gunicorn; git daemon), runs the workloads ``--runs`` times on a fresh database
and bucket each time, and writes a markdown table of medians to
``bench/results/<date>-<quick|full>.md`` (also printed). Everything it starts
is stopped and its temporary folder removed when it ends, fails or is
interrupted; ``--max-minutes`` bounds the whole run.

Workloads (see bench/workloads.py): W1 push of a seeded tree (full: 25,000
files, ~100 MB; quick: 2,000 files, ~8 MB), W2 full clone of it, W3
incremental fetch after a commit changing 10 files, W4 clone of a repository
built from 200 (quick: 30) small pushes before and after ``musehub_repack``.
W5 long history: a seeded tree (full: 10,000 files and 25,000 files; quick:
2,000) and commits each rewriting 10 files (full: 300 and 1,000 commits;
quick: 60), pushed as multi-commit mpacks with snapshot deltas (full: 6 and
10 pushes; quick: 3), then cloned; git gets the same history through
``git fast-import``, ``git push`` and ``git clone``. W5 also reports the server's
storage, the clone's bytes and the server's peak memory, and the time to
rebuild the tip's manifest (``--only W5`` runs it alone, ``--only W1-W4``
skips it). git push / clone / fetch against ``git daemon`` run on the same
trees in the same run; the ratio column is MuseHub time / git time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import data, report
from bench.gitref import (
    DescendantPeak,
    Git,
    GitDaemon,
    GitTree,
    git_version,
    own_memory_kb,
    pack_bytes,
    reset_own_peak,
    tree_size,
)
from bench.hub import BENCH_USER, REPO_ROOT, Hub, RelationSize, StatsLog, pg_version
from bench.workloads import (
    Measure,
    Quantity,
    Recorder,
    Timer,
    history_pushes,
    muse_clone,
    muse_fetch,
    muse_history,
    muse_push,
    push_bounds,
    small_pushes,
)
from musehub_core.formatting import human_bytes

W4_FILES_PER_PUSH = 3
W4_SIZES = (6 * 1024, 24 * 1024)
CHANGED_FILES = 10
CHANGE_SEED = 7


W5_CHANGED_FILES = 10
W5_TARGET_RSS_MB = 300
W5_TARGET_REBUILD_MS = 20
# (files, commits, pushes) of W5 by mode; the first full size is the headline.
W5_SIZES = {"quick": [(2_000, 60, 3)], "full": [(10_000, 300, 6), (25_000, 1_000, 10)]}


@dataclass(frozen=True)
class HistorySize:
    files: int
    commits: int
    pushes: int

    @property
    def workload(self) -> str:
        return f"W5 history {self.files:,} files x {self.commits:,} commits"


@dataclass(frozen=True)
class Config:
    mode: str
    files: int
    w4_pushes: int
    runs: int
    seed: int = 20260101
    w5: tuple[HistorySize, ...] = ()
    w5_runs: int = 1
    only: str | None = None  # "W1-W4" or "W5"

    @property
    def w1_w4(self) -> bool:
        return self.only in (None, "W1-W4")


def _ints(text: str | None, flag: str) -> list[int]:
    if not text:
        return []
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{flag} takes whole numbers separated by commas, not {text!r}") from None
    if any(v < 1 for v in values):
        raise SystemExit(f"{flag}: every value must be at least 1")
    return values


def history_sizes(args: argparse.Namespace, mode: str) -> tuple[HistorySize, ...]:
    """W5's sizes: the mode's defaults, or the --w5-* lists (a flag left out takes the mode's first size)."""
    given = [
        _ints(args.w5_files, "--w5-files"),
        _ints(args.w5_commits, "--w5-commits"),
        _ints(args.w5_pushes, "--w5-pushes"),
    ]
    if not any(given):
        return tuple(HistorySize(*size) for size in W5_SIZES[mode])
    first = W5_SIZES[mode][0]
    lists = [values or [default] for values, default in zip(given, first, strict=True)]
    count = max(len(values) for values in lists)
    if any(len(values) not in (1, count) for values in lists):
        raise SystemExit("--w5-files, --w5-commits and --w5-pushes need one value each, or the same number of values")
    lists = [values * count if len(values) == 1 else values for values in lists]
    return tuple(HistorySize(f, c, p) for f, c, p in zip(*lists, strict=True))


def config(args: argparse.Namespace) -> Config:
    mode = "quick" if args.quick else "full"
    if args.quick:
        runs = args.runs or 1
        cfg = Config("quick", files=args.files or 2_000, w4_pushes=args.w4_pushes or 30, runs=runs)
    else:
        runs = args.runs or 3
        cfg = Config("full", files=args.files or 25_000, w4_pushes=args.w4_pushes or 200, runs=runs)
    w5 = () if args.only == "W1-W4" or args.embedded else history_sizes(args, mode)
    w5_runs = args.w5_runs or (args.runs or 1)
    only = "W1-W4" if args.embedded else args.only
    return Config(cfg.mode, cfg.files, cfg.w4_pushes, cfg.runs, w5=w5, w5_runs=w5_runs, only=only)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def settle() -> None:
    """Flush dirty pages before a timed step, so one step's writeback does not land in the next one's time."""
    os.sync()


def one_run(
    index: int, cfg: Config, hub: Hub, daemon: GitDaemon, git: Git, tree: data.TreeInfo, work: Path
) -> list[Measure]:
    """Run W1-W4 once against a fresh hub; return the measures."""
    run_dir = work / f"run{index}"
    run_dir.mkdir()
    rec = Recorder(StatsLog(hub.stats_path))
    token = hub.token
    src = run_dir / "src"
    data.copy_tree(tree.root, src)

    # W1: push the whole tree.
    url = f"{hub.url}/{BENCH_USER}/w1"
    say(f"run {index}: W1 MuseHub push of {tree.files} files")
    settle()
    push = muse_push(rec, "W1 push", src, url, token, "W1: the whole tree")
    say(f"run {index}: W1 git add+commit+push")
    settle()
    git_tree = GitTree(git, run_dir / "src.git", src)
    git_commit = git_tree.commit_all("W1: the whole tree")
    bare = daemon.new_bare(f"run{index}-w1.git")
    git_push = git_tree.push(bare)
    push["measures"]["pack"].git_seconds = git_commit
    rec.add(
        Measure(
            "W1 push", "upload + unpack (git: push)", push["upload_unpack"], git_push, push["upload_unpack_requests"]
        )
    )
    rec.add(Measure("W1 push", "total", push["total"].seconds, git_commit + git_push, push["total"].requests()))

    # W2: full clone.
    say(f"run {index}: W2 clones")
    settle()
    clone = muse_clone(rec, "W2 clone", url, token, run_dir / "muse-clone")
    settle()
    git_clone = git.timed("clone", "-q", bare, str(run_dir / "git-clone"))
    rec.add(Measure("W2 clone", "total", clone["total"].seconds, git_clone, clone["total"].requests()))

    # W3: one commit changing 10 files, pushed, then fetched into the clones.
    say(f"run {index}: W3 incremental")
    data.change_files(src, tree.paths, CHANGED_FILES, CHANGE_SEED)
    settle()
    push3 = muse_push(rec, "W3 incremental", src, url, token, "W3: 10 files", prefix="push: ")
    settle()
    git_commit3 = git_tree.commit_all("W3: 10 files")
    git_push3 = git_tree.push(bare)
    rec.add(
        Measure(
            "W3 incremental",
            f"push total ({push3['blobs']} blobs)",
            push3["total"].seconds,
            git_commit3 + git_push3,
            push3["total"].requests(),
        )
    )
    settle()
    fetch = muse_fetch(rec, "W3 incremental", run_dir / "muse-clone", token)
    git_fetch = git.timed("fetch", "-q", "origin", cwd=run_dir / "git-clone")
    rec.add(
        Measure(
            "W3 incremental",
            f"fetch total ({fetch['blobs']} blobs)",
            fetch["total"].seconds,
            git_fetch,
            fetch["total"].requests(),
        )
    )

    # W4: many small pushes, clone before and after repack.
    say(f"run {index}: W4 {cfg.w4_pushes} small pushes")
    url4 = f"{hub.url}/{BENCH_USER}/w4"
    commits = [
        list(data.small_commit_files(step, cfg.seed, W4_FILES_PER_PUSH, W4_SIZES)) for step in range(cfg.w4_pushes)
    ]
    timer = Timer(rec.log)
    settle()
    with timer():
        build_seconds, _head = small_pushes(url4, token, commits)
    git4_tree = run_dir / "w4-git"
    git4 = GitTree(git, run_dir / "w4.git", git4_tree)
    bare4 = daemon.new_bare(f"run{index}-w4.git")
    git_build = 0.0
    for files in commits:
        for relative, content in files:
            (git4_tree / relative).parent.mkdir(parents=True, exist_ok=True)
            (git4_tree / relative).write_bytes(content)
        git_build += git4.commit_all("small push") + git4.push(bare4)
    rec.add(Measure("W4 many packs", f"{cfg.w4_pushes} small pushes", build_seconds, git_build, timer.requests()))

    settle()
    before = muse_clone(rec, "W4 many packs", url4, token, run_dir / "w4-before", label="before repack")
    git_before = git.timed("clone", "-q", bare4, str(run_dir / "w4-git-before"))
    rec.add(
        Measure(
            "W4 many packs",
            "clone total before repack",
            before["total"].seconds,
            git_before,
            before["total"].requests(),
        )
    )
    say(f"run {index}: W4 musehub_repack")
    started = time.perf_counter()
    # --all: every pack into one, as git's repack -a -d (the pushes already ran the automatic geometric repack).
    output = hub.manage("musehub_repack", "--all", "--repo", f"{BENCH_USER}/w4", "--no-progress")
    repack_seconds = time.perf_counter() - started
    say(f"run {index}: repack: {output.strip()[:300]}")
    git_repack = git.timed(f"--git-dir={daemon.base / f'run{index}-w4.git'}", "repack", "-a", "-d", "-q")
    rec.add(
        Measure("W4 many packs", "musehub_repack --all (git: repack -a -d)", repack_seconds, git_repack, server=False)
    )
    settle()
    after = muse_clone(rec, "W4 many packs", url4, token, run_dir / "w4-after", label="after repack")
    git_after = git.timed("clone", "-q", bare4, str(run_dir / "w4-git-after"))
    rec.add(
        Measure(
            "W4 many packs", "clone total after repack", after["total"].seconds, git_after, after["total"].requests()
        )
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    for name in (f"run{index}-w1.git", f"run{index}-w4.git"):
        shutil.rmtree(daemon.base / name, ignore_errors=True)
    return rec.measures


@dataclass
class HistoryDetails:
    """What one W5 run found beyond the table's figures, for the storage breakdown under it."""

    size: HistorySize
    run: int
    relations: list[RelationSize]
    bucket: dict[str, tuple[int, int]]
    bucket_after_clone: dict[str, tuple[int, int]]
    git_bytes: int
    git_objects: dict[str, str]
    pushed_pack_bytes: int
    blobs: int
    rebuild: dict[str, float]
    git_clone_pack: int
    muse_clone_pack: int
    client_files: dict[str, int]  # bytes in the MuseHub clone's .musehub/, by file suffix


def _marks(path: Path) -> dict[int, str]:
    """Read a ``git fast-import --export-marks`` file: {mark: commit sha}."""
    marks = {}
    for line in path.read_text().splitlines():
        mark, sha = line.split()
        marks[int(mark.lstrip(":"))] = sha
    return marks


def history_run(
    index: int,
    size: HistorySize,
    history: data.History,
    stream: Path,
    hub: Hub,
    daemon: GitDaemon,
    git: Git,
    work: Path,
) -> tuple[list[Measure], list[Quantity], HistoryDetails]:
    """Run W5 once for *size* against a fresh hub (the caller starts it); return the measures, quantities, details."""
    name = size.workload
    run_dir = work / f"run{index}-w5-{size.files}x{size.commits}"
    run_dir.mkdir()
    rec = Recorder(StatsLog(hub.stats_path))
    url = f"{hub.url}/{BENCH_USER}/w5"
    bare_name = f"run{index}-w5-{size.files}x{size.commits}.git"
    bare = daemon.base / bare_name

    say(f"run {index}: {name}: make history (MuseHub ids; git fast-import)")
    settle()
    started = time.perf_counter()
    muse = muse_history(history)
    muse_make = time.perf_counter() - started
    source = run_dir / "source.git"
    git.run("init", "-q", "--bare", str(source))
    marks_path = run_dir / "marks"
    settle()
    git_make = git.timed_input(
        f"--git-dir={source}", "fast-import", "--quiet", f"--export-marks={marks_path}", stdin=stream
    )
    marks = _marks(marks_path)
    rec.add(Measure(name, "make history (MuseHub: ids; git: fast-import)", muse_make, git_make, server=False))

    bounds = push_bounds(size.commits, size.pushes)
    say(f"run {index}: {name}: MuseHub {len(bounds)} pushes")
    settle()
    pushed = history_pushes(rec, name, url, hub.token, muse, size.pushes, run_dir)
    say(f"run {index}: {name}: git {len(bounds)} pushes")
    url_git = daemon.new_bare(bare_name)
    settle()
    git_push = 0.0
    for _start, end in bounds:
        # commit n has mark n + 1, so the last commit of [start, end) has mark `end`
        git_push += git.timed(f"--git-dir={source}", "push", "-q", url_git, f"{marks[end]}:refs/heads/main")
    push_total = pushed["total"].seconds
    rec.add(
        Measure(
            name,
            f"push total ({len(bounds)} pushes; git: git push)",
            push_total,
            git_push,
            pushed["total"].requests(),
        )
    )
    rec.quantity(Quantity(name, f"push time ({len(bounds)} pushes)", push_total, git_push, "s", max_ratio=1.0))

    relations = hub.relation_sizes()
    bucket = hub.bucket_usage()
    db_bytes = sum(r.total for r in relations)
    s3_bytes = sum(b for _, b in bucket.values())
    git_bytes = tree_size(bare)
    git_objects = dict(
        line.split(": ", 1) for line in git.run(f"--git-dir={bare}", "count-objects", "-v").splitlines() if ": " in line
    )
    rec.quantity(
        Quantity(
            name,
            "server storage (MuseHub: musehub_* tables + object storage; git: bare repository)",
            db_bytes + s3_bytes,
            git_bytes,
            "bytes",
            max_ratio=1.0,
        )
    )
    rec.quantity(Quantity(name, "… of which database tables", db_bytes, None, "bytes"))
    rec.quantity(Quantity(name, "… of which object storage", s3_bytes, None, "bytes"))

    say(f"run {index}: {name}: clones")
    settle()
    reset_own_peak()
    client_start_kb, _ = own_memory_kb()
    clone = muse_clone(rec, name, url, hub.token, run_dir / "muse-clone")
    client_peak_kb = own_memory_kb()[1]
    settle()
    assert daemon.proc is not None and hub.moto is not None and hub.moto.proc is not None and hub.gunicorn is not None
    servers = (daemon.proc.pid, hub.moto.proc.pid, hub.gunicorn.pid)
    with DescendantPeak(daemon.proc.pid) as peak, DescendantPeak(os.getpid(), exclude=servers) as git_client:
        git_clone = git.timed("clone", "-q", url_git, str(run_dir / "git-clone"))
    git_clone_pack = pack_bytes(run_dir / "git-clone" / ".git")
    clone_requests = clone["total"].requests()
    rec.add(Measure(name, "clone total", clone["total"].seconds, git_clone, clone_requests))
    rec.quantity(Quantity(name, "clone time", clone["total"].seconds, git_clone, "s", max_ratio=1.0))
    rec.quantity(
        Quantity(
            name,
            "clone: bytes downloaded (MuseHub: the fetch pack; git: the pack received)",
            clone["pack_bytes"],
            git_clone_pack,
            "bytes",
            max_ratio=1.0,
        )
    )
    rss = max((r["peak_rss_kb"] for r in clone_requests), default=0) / 1024
    rec.quantity(
        Quantity(
            name,
            "clone: server peak RSS (MuseHub: gunicorn worker; git: upload-pack + pack-objects)",
            rss,
            peak.peak_kb / 1024,
            "MB",
            below=W5_TARGET_RSS_MB,
        )
    )
    rec.quantity(
        Quantity(
            name,
            "clone: client's repository data on disk (MuseHub: .musehub/; git: .git/)",
            tree_size(run_dir / "muse-clone" / ".musehub"),
            tree_size(run_dir / "git-clone" / ".git"),
            "bytes",
        )
    )
    rec.quantity(
        Quantity(
            name,
            "clone: client peak memory (MuseHub: growth of the benchmark process running the client; "
            "git: git clone and its helpers)",
            (client_peak_kb - client_start_kb) / 1024,
            git_client.peak_kb / 1024,
            "MB",
        )
    )
    bucket_after_clone = hub.bucket_usage()

    say(f"run {index}: {name}: rebuild the tip's manifest")
    rebuild = hub.time_manifest_rebuild(muse.tip_snapshot)
    rec.quantity(
        Quantity(
            name,
            f"rebuild the tip's manifest (`load_manifest`, end of a {size.commits:,}-commit chain)",
            rebuild["median_ms"],
            None,
            "ms",
            below=W5_TARGET_REBUILD_MS,
        )
    )
    details = HistoryDetails(
        size=size,
        run=index,
        relations=relations,
        bucket=bucket,
        bucket_after_clone=bucket_after_clone,
        git_bytes=git_bytes,
        git_objects=git_objects,
        pushed_pack_bytes=pushed["pack_bytes"],
        blobs=pushed["blobs"],
        rebuild=rebuild,
        git_clone_pack=git_clone_pack,
        muse_clone_pack=clone["pack_bytes"],
        client_files=files_by_suffix(run_dir / "muse-clone" / ".musehub"),
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(bare, ignore_errors=True)
    return rec.measures, rec.quantities, details


def files_by_suffix(root: Path) -> dict[str, int]:
    """Return {suffix ('.mpack', '.manifests', '' ...): bytes} of the files under *root*."""
    found: dict[str, int] = {}
    for path in root.rglob("*"):
        if path.is_file():
            found[path.suffix] = found.get(path.suffix, 0) + path.stat().st_size
    return found


def history_section(details: HistoryDetails) -> str:
    """Markdown: where one W5 size's bytes lie (database tables, object storage, git) and the rebuild's details."""
    size, rebuild = details.size, details.rebuild
    hb = human_bytes
    db_total = sum(r.total for r in details.relations)
    lines = [
        f"{size.workload} (run {details.run}): rebuilding the tip's manifest "
        f"({rebuild['entries']:,.0f} entries, stored {rebuild['depth']} deltas above its checkpoint; "
        f"{rebuild['checkpoints']:,.0f} checkpoints and {rebuild['deltas']:,.0f} deltas stored) took "
        f"{rebuild['median_ms']:.1f} ms (median of 20 calls; first call {rebuild['first_ms']:.1f} ms) "
        f"in a Django process on the bench database; target < {W5_TARGET_REBUILD_MS} ms.",
        "",
        f"Where the storage goes after the pushes ({details.blobs:,} blobs in {hb(details.pushed_pack_bytes)} of "
        f"pushed mpacks; the clone's fetch pack was {hb(details.muse_clone_pack)}, git's {hb(details.git_clone_pack)}):",
        "",
        "| where | rows / objects | total | heap | indexes | TOAST | share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    s3_total = sum(b for _, b in details.bucket.values())
    grand = db_total + s3_total
    for r in details.relations:
        if r.total == 0:
            continue
        lines.append(
            f"| table {r.name} | {r.rows:,} | {hb(r.total)} | {hb(r.heap)} | {hb(r.indexes)} | {hb(r.toast)} | "
            f"{100 * r.total / grand:.1f}% |"
        )
    lines.append(f"| **database, all musehub_* tables** | | **{hb(db_total)}** | | | | {100 * db_total / grand:.1f}% |")
    for prefix, (count, total) in sorted(details.bucket.items()):
        lines.append(f"| object storage `{prefix}/` | {count:,} | {hb(total)} | | | | {100 * total / grand:.1f}% |")
    lines.append(f"| **MuseHub total** | | **{hb(grand)}** | | | | 100% |")
    go = details.git_objects
    packs = int(go.get("size-pack", "0")) * 1024
    lines.append(
        f"| git: bare repository ({go.get('packs', '?')} packs, {go.get('in-pack', '?')} objects) | "
        f"| **{hb(details.git_bytes)}** (packs {hb(packs)}) | | | | |"
    )
    grown = {
        prefix: after[1] - details.bucket.get(prefix, (0, 0))[1]
        for prefix, after in details.bucket_after_clone.items()
        if after[1] != details.bucket.get(prefix, (0, 0))[1]
    }
    if grown:
        extra = ", ".join(f"`{prefix}/` +{hb(b)}" for prefix, b in sorted(grown.items()))
        lines += ["", f"The clone added to object storage (the fetch pack the hub keeps): {extra}."]
    if details.client_files:
        kept = ", ".join(
            f"`*{suffix or '(no suffix)'}` {hb(b)}"
            for suffix, b in sorted(details.client_files.items(), key=lambda item: -item[1])
        )
        lines += [
            "",
            f"The MuseHub clone's `.musehub/` after the clone: {kept} (`.manifests`: the full manifest of "
            "every snapshot that travelled as a delta, which the client writes beside the pack).",
        ]
    return "\n".join(lines)


W5_NOTES = [
    "W5 push time: per push, refs + filter-objects, building the mpack (snapshot deltas, zstd), upload and "
    "`mpack/push`, summed over the pushes; git: `git push` of the commit ending each push (pack-objects, "
    "transfer, index-pack on the daemon's side). Making the history (ids; `git fast-import`) is a row of its own "
    "and not in the push time.",
    "W5 server storage, measured after the pushes (before the clone): the sum of `pg_total_relation_size` over "
    "the bench database's musehub_* tables (a fresh database holds only this history; the empty schema is a few "
    "hundred KiB of indexes) plus every object in the bucket; git: the bare repository's files "
    "(`du --apparent-size`).",
    "W5 clone bytes: MuseHub the fetch pack the client downloaded (the API answers add a few KiB); git the pack "
    "`git clone` received (its `.pack` file; the protocol's ref advertisement and framing add a little).",
    "W5 server peak RSS during the clone: MuseHub the gunicorn worker's VmHWM during the clone's requests (the "
    "fetch call builds the pack); git the sum of the VmHWM of the git daemon's children (upload-pack, "
    "pack-objects), sampled every 50 ms.",
]


def _order(measures: list[Measure]) -> list[Measure]:
    """Sort measures by workload (W1..W4), keeping each workload's phase order."""
    return sorted(measures, key=lambda m: m.workload[:2])


def default_tmp() -> str | None:
    """/dev/shm when it is a tmpfs with room for the work folder, else None ($TMPDIR)."""
    shm = "/dev/shm"
    try:
        return shm if os.path.isdir(shm) and shutil.disk_usage(shm).free > 4 * 1024**3 else None
    except OSError:
        return None


def filesystem_of(path: Path) -> str:
    """Return 'tmpfs', 'ext4', ... for the mount holding *path* (from /proc/mounts)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2,000 files (~8 MB), 30 small pushes, W5 2,000 x 60, 1 run"
    )
    parser.add_argument("--runs", type=int, default=0, help="runs to take medians over (default 3; quick 1)")
    parser.add_argument("--files", type=int, default=0, help="files in the W1 tree (default 25,000; quick 2,000)")
    parser.add_argument("--w4-pushes", type=int, default=0, help="small pushes in W4 (default 200; quick 30)")
    parser.add_argument(
        "--w5-files",
        default=None,
        help="W5 tree sizes, comma-separated (default 10000,25000; quick 2000); see --w5-commits",
    )
    parser.add_argument(
        "--w5-commits",
        default=None,
        help="W5 commits per history, matching --w5-files (default 300,1000; quick 60); "
        "a --w5-* flag left out takes the mode's first size (10000 x 300 x 6; quick 2000 x 60 x 3)",
    )
    parser.add_argument(
        "--w5-pushes", default=None, help="pushes each W5 history is split into (default 6,10; quick 3)"
    )
    parser.add_argument(
        "--w5-runs", type=int, default=0, help="runs of each W5 size (default: --runs if given, else 1)"
    )
    parser.add_argument(
        "--only", choices=("W1-W4", "W5"), default=None, help="run only W1-W4 (skip W5) or only W5 (default: all)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default bench/results/<date>-<mode>.md; with --only, <date>-<mode>-w5.md or -w1-w4.md)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="the hub on SQLite and filesystem storage (make run's default) instead of PostgreSQL and moto; W1-W4 only",
    )
    parser.add_argument("--max-minutes", type=float, default=60, help="stop (and clean up) after this long")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) for inspection")
    parser.add_argument(
        "--tmp",
        default=None,
        help="where the trees, clones and git repositories go (default /dev/shm when it has 4 GiB free, "
        "else $TMPDIR): the client and git then measure software, not this machine's disk",
    )
    args = parser.parse_args(argv)
    cfg = config(args)
    command = report.command_line() if argv is None else "python -m bench.run " + " ".join(argv)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(int(args.max_minutes * 60))
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="musehub-bench-", dir=args.tmp or default_tmp()))
    hub = Hub(work / "hub", embedded=args.embedded, workers=args.workers)
    git = Git(work / "git-home")
    daemon = GitDaemon(work / "git-daemon", git, work / "git-daemon.log")
    total_runs = max(cfg.runs if cfg.w1_w4 else 0, cfg.w5_runs if cfg.w5 else 0)
    runs: list[list[Measure]] = [[] for _ in range(total_runs)]
    quantities: list[list[Quantity]] = [[] for _ in range(total_runs)]
    details: dict[HistorySize, HistoryDetails] = {}
    histories: dict[HistorySize, str] = {}
    tree: data.TreeInfo | None = None
    work_fs = filesystem_of(work)
    try:
        say(f"{cfg.mode} mode, {cfg.runs if cfg.w1_w4 else cfg.w5_runs} run(s); work folder {work}")
        if cfg.w1_w4:
            t = time.perf_counter()
            tree = data.make_tree(work / "tree", data.TreeSpec(cfg.files, seed=cfg.seed))
            say(f"tree: {tree.files} files, {human_bytes(tree.total_bytes)} in {time.perf_counter() - t:.1f}s")
        say("starting SQLite, git daemon" if args.embedded else "starting PostgreSQL database, moto S3, git daemon")
        hub.start()
        daemon.start()
        for index in range(1, cfg.runs + 1 if tree is not None else 1):
            say(f"run {index}/{cfg.runs}: fresh database, bucket and gunicorn")
            hub.start_run()
            try:
                runs[index - 1].extend(one_run(index, cfg, hub, daemon, git, tree, work))
            finally:
                hub.stop_run()
        for size in cfg.w5:
            t = time.perf_counter()
            history = data.make_history(size.files, size.commits, W5_CHANGED_FILES, cfg.seed)
            stream = work / f"w5-{size.files}x{size.commits}.fast-import"
            with open(stream, "wb") as handle:
                data.write_fast_import(history, handle)
            histories[size] = (
                f"{size.workload}: a tree of {size.files:,} files ({human_bytes(history.tree_bytes)}), then "
                f"{size.commits - 1:,} commits each rewriting {W5_CHANGED_FILES} files "
                f"({human_bytes(history.edit_bytes)} of new versions), pushed in {size.pushes} pushes"
            )
            say(f"{histories[size]} (made in {time.perf_counter() - t:.1f}s)")
            for index in range(1, cfg.w5_runs + 1):
                say(f"run {index}/{cfg.w5_runs}: {size.workload}: fresh database, bucket and gunicorn")
                hub.start_run()
                try:
                    measures, found, details[size] = history_run(index, size, history, stream, hub, daemon, git, work)
                    runs[index - 1].extend(measures)
                    quantities[index - 1].extend(found)
                finally:
                    hub.stop_run()
            del history
            stream.unlink()
        runs = [_order(measures) for measures in runs]
        info = report.machine_info(pg_version(), git_version())
    except (Interrupted, KeyboardInterrupt) as exc:
        say(f"interrupted: {exc}")
        return 130
    finally:
        signal.alarm(0)
        hub.close()
        daemon.stop()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.perf_counter() - started
    rows = report.collect(runs)
    setup = [
        f"Mode: {cfg.mode}; "
        + (f"W1-W4 {cfg.runs} run(s)" if cfg.w1_w4 else "W1-W4 not run (--only W5)")
        + "; "
        + (f"W5 {cfg.w5_runs} run(s) per size" if cfg.w5 else "W5 not run (--only W1-W4)")
        + f", each on a fresh database, bucket and gunicorn; medians shown; whole benchmark took {elapsed / 60:.1f} min",
    ]
    if tree is not None:
        setup += [
            f"W1-W3 tree: {tree.files:,} files, {human_bytes(tree.total_bytes)} "
            f"(seed {cfg.seed}; log-normal sizes, mean 4 KiB; 50% text, 30% random, 20% mixed; "
            f"{sum(1 for _ in tree.paths) // 100} folders); W3 changes {CHANGED_FILES} files",
            f"W4: {cfg.w4_pushes} pushes of {W4_FILES_PER_PUSH} files of "
            f"{W4_SIZES[0] // 1024}-{W4_SIZES[1] // 1024} KiB (2 new, 1 rewritten), "
            "(each push may run the automatic geometric repack, MUSEHUB_AUTO_REPACK_PACKS), "
            "then `manage.py musehub_repack --all --repo bench/w4`",
        ]
    if cfg.w5:
        setup += [
            *histories.values(),
            "W5 history: the W1 tree's generator (same seed) for the first commit; each later commit rewrites "
            f"{W5_CHANGED_FILES} seeded-chosen files the way W3 does (first half kept, the rest new text); "
            "MuseHub: commits, snapshot deltas (`snapshot_dict`) and zstd blobs built with musehub_core, "
            "one mpack per push (refs + filter-objects, upload, `mpack/push` through HubClient), then "
            "`musehub_client.operations.clone`; git: `git fast-import`, one `git push <commit>:main` per push, "
            "`git clone`",
        ]
    stores = (
        "on SQLite and filesystem storage (make run's default) in the work folder"
        if args.embedded
        else "on PostgreSQL and moto's S3 server (127.0.0.1)"
    )
    setup += [
        f"Hub: gunicorn musehub.wsgi, {args.workers} workers x 4 threads, {stores}; client: "
        "musehub_client.operations in the benchmark process; git: git daemon on 127.0.0.1",
        f"Work folder (trees, clones, git repositories): {work.parent} ({work_fs}); "
        + (
            "the hub's SQLite database and packs are there too"
            if args.embedded
            else "PostgreSQL's data stays on its own disk, moto keeps objects in memory"
        ),
    ]
    notes = [
        "MuseHub s: wall time seen by the client; git s: wall time of the git commands doing the same "
        "(W1 client pack vs `git add -A && git commit`; upload + unpack vs `git push`; W2 `git clone`; "
        "W3 commit + push, then `git fetch`; W4 commit + push per step, `git clone`, `git repack -a -d`).",
        "Server columns cover the hub's requests in that phase (— for client-only phases): storage GETs = "
        "HTTP GETs the hub sent to S3 (in brackets: all its S3 requests, HEAD/PUT/COPY/DELETE included); "
        "bytes read = their Content-Length; DB queries = execute/executemany calls on the default connection, "
        "in brackets the statements they ran when an executemany ran many (one per row); "
        "peak RSS = the largest gunicorn worker VmHWM during the phase's requests (reset when each request "
        "starts), in brackets how far it rose above the worker's RSS at the start of that request "
        "(the rest is memory the worker kept from earlier requests).",
        "Client transfers (PUT of the push pack, GET of the fetch pack) go straight to S3 with presigned URLs "
        "and are not in the storage columns.",
        "The hub runs with its defaults: the content cache (MUSEHUB_CONTENT_CACHE_MAX_BYTES) is off, so "
        "every fetch reads its blobs from packs.",
        "The musehub_repack time is the whole `manage.py` subprocess, about 0.5 s of which is Python and "
        "Django starting up.",
        "Client phases that write files (W2 write files, git clone's checkout, git add) depend on the disk "
        "the work folder is on (see --tmp); `os.sync()` runs before each timed step.",
    ]
    sections = []
    if cfg.w5:
        notes += W5_NOTES
        sections = [
            "W5 long history: the issue's figures (medians over the runs; targets from the issue):",
            report.quantity_table(report.collect_quantities(quantities)),
            *[history_section(d) for d in details.values()],
        ]
    doc = report.document(
        title=f"MuseHub benchmark ({cfg.mode}{', embedded: SQLite and filesystem storage' if args.embedded else ''})",
        info=info,
        setup=setup,
        rows=rows,
        notes=notes,
        command=command,
        sections=sections,
    )
    # --only W5: <date>-full-w5.md, not the full run's file; --embedded: <date>-full-embedded.md
    suffix = "-embedded" if args.embedded else f"-{cfg.only.lower()}" if cfg.only else ""
    out = args.out or REPO_ROOT / "bench" / "results" / f"{dt.date.today().isoformat()}-{cfg.mode}{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    print(doc)
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
