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
git push / clone / fetch against ``git daemon`` run on the same trees in the
same run; the ratio column is MuseHub time / git time.
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
from bench.gitref import Git, GitDaemon, GitTree, git_version
from bench.hub import BENCH_USER, REPO_ROOT, Hub, StatsLog, pg_version
from bench.workloads import Measure, Recorder, Timer, muse_clone, muse_fetch, muse_push, small_pushes

W4_FILES_PER_PUSH = 3
W4_SIZES = (6 * 1024, 24 * 1024)
CHANGED_FILES = 10
CHANGE_SEED = 7


@dataclass(frozen=True)
class Config:
    mode: str
    files: int
    w4_pushes: int
    runs: int
    seed: int = 20260101


def config(args: argparse.Namespace) -> Config:
    if args.quick:
        return Config("quick", files=args.files or 2_000, w4_pushes=args.w4_pushes or 30, runs=args.runs or 1)
    return Config("full", files=args.files or 25_000, w4_pushes=args.w4_pushes or 200, runs=args.runs or 3)


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
    output = hub.manage("musehub_repack", "--repo", f"{BENCH_USER}/w4", "--no-progress")
    repack_seconds = time.perf_counter() - started
    say(f"run {index}: repack: {output.strip()[:300]}")
    git_repack = git.timed(f"--git-dir={daemon.base / f'run{index}-w4.git'}", "repack", "-a", "-d", "-q")
    rec.add(Measure("W4 many packs", "musehub_repack (git: repack -a -d)", repack_seconds, git_repack, server=False))
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
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 files (~8 MB), 30 small pushes, 1 run")
    parser.add_argument("--runs", type=int, default=0, help="runs to take medians over (default 3; quick 1)")
    parser.add_argument("--files", type=int, default=0, help="files in the W1 tree (default 25,000; quick 2,000)")
    parser.add_argument("--w4-pushes", type=int, default=0, help="small pushes in W4 (default 200; quick 30)")
    parser.add_argument("--out", type=Path, default=None, help="results file (default bench/results/<date>-<mode>.md)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
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
    hub = Hub(work / "hub", workers=args.workers)
    git = Git(work / "git-home")
    daemon = GitDaemon(work / "git-daemon", git, work / "git-daemon.log")
    runs: list[list[Measure]] = []
    work_fs = filesystem_of(work)
    try:
        say(f"{cfg.mode} mode, {cfg.runs} run(s); work folder {work}")
        t = time.perf_counter()
        tree = data.make_tree(work / "tree", data.TreeSpec(cfg.files, seed=cfg.seed))
        say(f"tree: {tree.files} files, {report.human_bytes(tree.total_bytes)} in {time.perf_counter() - t:.1f}s")
        say("starting PostgreSQL database, moto S3, git daemon")
        hub.start()
        daemon.start()
        for index in range(1, cfg.runs + 1):
            say(f"run {index}/{cfg.runs}: fresh database, bucket and gunicorn")
            hub.start_run()
            try:
                runs.append(_order(one_run(index, cfg, hub, daemon, git, tree, work)))
            finally:
                hub.stop_run()
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
        f"Mode: {cfg.mode}; {cfg.runs} run(s), each on a fresh database, bucket and gunicorn; medians shown; "
        f"whole benchmark took {elapsed / 60:.1f} min",
        f"W1-W3 tree: {tree.files:,} files, {report.human_bytes(tree.total_bytes)} "
        f"(seed {cfg.seed}; log-normal sizes, mean 4 KiB; 50% text, 30% random, 20% mixed; "
        f"{sum(1 for _ in tree.paths) // 100} folders); W3 changes {CHANGED_FILES} files",
        f"W4: {cfg.w4_pushes} pushes of {W4_FILES_PER_PUSH} files of {W4_SIZES[0] // 1024}-{W4_SIZES[1] // 1024} KiB "
        "(2 new, 1 rewritten), then `manage.py musehub_repack --repo bench/w4`",
        f"Hub: gunicorn musehub.wsgi, {args.workers} workers x 4 threads, on PostgreSQL and moto's S3 server "
        "(127.0.0.1); client: musehub_client.operations in the benchmark process; git: git daemon on 127.0.0.1",
        f"Work folder (trees, clones, git repositories): {work.parent} ({work_fs}); PostgreSQL's data stays "
        "on its own disk, moto keeps objects in memory",
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
        "Objects of at most 4 KiB (MUSEHUB_CONTENT_CACHE_MAX_BYTES) are also kept in the database and "
        "served from there; W4's files are bigger, so its fetches read packs.",
        "The musehub_repack time is the whole `manage.py` subprocess, about 0.5 s of which is Python and "
        "Django starting up.",
        "Client phases that write files (W2 write files, git clone's checkout, git add) depend on the disk "
        "the work folder is on (see --tmp); `os.sync()` runs before each timed step.",
    ]
    doc = report.document(
        title=f"MuseHub benchmark ({cfg.mode})",
        info=info,
        setup=setup,
        rows=rows,
        notes=notes,
        command=command,
    )
    out = args.out or REPO_ROOT / "bench" / "results" / f"{dt.date.today().isoformat()}-{cfg.mode}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    print(doc)
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
